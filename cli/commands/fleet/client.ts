import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { type ErrorCode, ERROR_CODES, OutpostError, messageOf } from '../../../runtime/errors.js';
import { readTokenFile } from '../../../runtime/server/http/index.js';

/**
 * How every `outpost fleet …` command but `serve` reaches the service: its HTTP API (fleet/api/), at `--fleet`
 * (default $OUTPOST_FLEET_URL, else http://127.0.0.1:8090) with the bearer token in `--token-file` (default
 * $OUTPOST_FLEET_TOKEN_FILE). An error answer becomes the OutpostError it was on the service, code and all.
 */
export const FLEET_URL_ENV = 'OUTPOST_FLEET_URL';
export const FLEET_TOKEN_FILE_ENV = 'OUTPOST_FLEET_TOKEN_FILE';
export const DEFAULT_FLEET_URL = 'http://127.0.0.1:8090';
export const REQUEST_TIMEOUT_MS = 120_000; // milliseconds for one API call (uploads of large artifacts included)

export interface ClientOptions {
  fleet?: string;
  tokenFile?: string;
  json?: boolean;
}

export function addClientOptions(command: Command): Command {
  return command
    .option('--fleet <url>', `the fleet service's API (default $${FLEET_URL_ENV} or ${DEFAULT_FLEET_URL})`)
    .option('--token-file <file>', `bearer token for the API (default $${FLEET_TOKEN_FILE_ENV})`)
    .option('--json', 'print JSON');
}

export class FleetClient {
  private constructor(
    readonly url: string,
    private readonly token: string | undefined,
  ) {}

  static async from(options: ClientOptions): Promise<FleetClient> {
    const url = (options.fleet ?? process.env[FLEET_URL_ENV] ?? DEFAULT_FLEET_URL).replace(/\/+$/, '');
    const file = options.tokenFile ?? process.env[FLEET_TOKEN_FILE_ENV];
    return new FleetClient(url, file === undefined || file === '' ? undefined : await readTokenFile(file));
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, JSON.stringify(body), 'application/json');
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, JSON.stringify(body), 'application/json');
  }

  async upload<T>(path: string, file: string): Promise<T> {
    const { size } = await stat(file);
    const body = Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>;
    return this.request<T>('POST', path, body, 'application/gzip', size);
  }

  private async request<T>(
    method: string,
    path: string,
    body?: string | ReadableStream<Uint8Array>,
    type?: string,
    length?: number,
  ): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: {
          ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
          ...(type === undefined ? {} : { 'content-type': type }),
          ...(length === undefined ? {} : { 'content-length': String(length) }),
        },
        ...(body === undefined ? {} : { body, duplex: 'half' }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause;
      throw new OutpostError(
        'FLEET_UNREACHABLE',
        `the fleet service at ${this.url} is not answering: ${messageOf(cause ?? error)} (is \`outpost fleet serve\` running? --fleet, $${FLEET_URL_ENV})`,
        {
          cause: error,
          details: { url: this.url },
        },
      );
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text === '' ? {} : JSON.parse(text);
    } catch {
      throw new OutpostError(
        'FLEET_UNREACHABLE',
        `${this.url}${path} answered ${response.status} with something other than JSON`,
      );
    }
    if (response.ok) return json as T;
    const error = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } }).error;
    const code: ErrorCode =
      error?.code !== undefined && Object.hasOwn(ERROR_CODES, error.code)
        ? (error.code as ErrorCode)
        : response.status === 401
          ? 'UNAUTHORIZED'
          : 'INTERNAL';
    throw new OutpostError(code, error?.message ?? `${method} ${path}: HTTP ${response.status}`, {
      details: error?.details ?? {},
    });
  }
}

/** `a,b` and repeated flags alike. */
export function splitList(values: readonly string[] | undefined): string[] {
  return (values ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}
