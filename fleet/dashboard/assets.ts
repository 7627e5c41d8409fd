import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { logger } from '../../runtime/log.js';
import { STYLESHEET } from './style.js';

const log = logger('fleet.dashboard');

/**
 * The dashboard's static files, all served from the package: the stylesheet (style.ts) and the live-update script,
 * built by tsup from client/live.ts into dist/dashboard/live.js (a browser entry of tsup.config.ts). No CDN and no
 * inline script: the Content-Security-Policy below allows this server's own files and nothing else.
 */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** Headers on every dashboard answer. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
});

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

/** The package's root: the folder above this module (source) or above dist/ (the bundle) holding package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return dirname(fileURLToPath(import.meta.url));
}

export const SCRIPT_PATH = join(packageRoot(), 'dist', 'dashboard', 'live.js');

export class Assets {
  private script: Promise<Buffer | undefined> | undefined;
  private readonly css = Buffer.from(STYLESHEET, 'utf8');

  constructor(private readonly scriptPath: string = SCRIPT_PATH) {}

  async get(name: string): Promise<Asset | undefined> {
    if (name === 'dashboard.css') return { type: 'text/css; charset=utf-8', body: this.css };
    if (name !== 'live.js') return undefined;
    this.script ??= readFile(this.scriptPath).catch(() => {
      log.warn(
        { path: this.scriptPath },
        'dashboard: the live-update script is not built (npm run build); pages work without live updates',
      );
      return undefined;
    });
    const body = await this.script;
    return body === undefined ? undefined : { type: 'text/javascript; charset=utf-8', body };
  }
}
