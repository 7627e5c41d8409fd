import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as z from 'zod';
import { messageOf } from '../errors.js';
import { logger } from '../log.js';
import {
  PROBE_DIMS,
  PROBE_EXPECTED,
  PROBE_INPUT,
  PROBE_INPUT_NAME,
  PROBE_OUTPUT_NAME,
  probeModelBytes,
} from './probe-model.js';

/**
 * A native addon that crashes takes the whole process with it: no `try` catches a SIGSEGV in onnxruntime-node's
 * shared library (as happens at load under qemu-user on arm64), so the agent would crash-loop instead of falling
 * back to WASM. Where that is possible, the native backend first loads onnxruntime-node in a child process and runs
 * a tiny model there; the child's fate is the verdict, cached on disk by the binary's identity so it is paid once
 * per installed binary, not once per start.
 */

const log = logger('backend.native.probe');

/** `OUTPOST_PROBE_NATIVE`: 1/always probes everywhere, 0/never nowhere, anything else (auto) off known-good hosts. */
export type ProbeMode = 'auto' | 'always' | 'never';

/**
 * `platform-arch` pairs where onnxruntime-node's prebuilt binary is built and tested by ONNX Runtime's own CI on
 * that hardware, and where a crash at load has not been seen: no probe there (it costs a node start and a model
 * load: ≈0.1–0.2 s on an x86 host, once per binary). Everything else, linux-arm64 above all (Pi, Jetson, emulated
 * buildx images), is probed.
 */
export const KNOWN_GOOD_PLATFORMS: ReadonlySet<string> = new Set([
  'linux-x64',
  'darwin-arm64',
  'darwin-x64',
  'win32-x64',
]);

/**
 * Load + one run of a 4×4 MatMul: ≈0.1–0.2 s natively on x86, 1.4–5 s to the SIGSEGV under qemu-user on a loaded
 * 2-core host (test/arm64). Past this the binding is taken to hang (and the child is killed).
 */
export const PROBE_TIMEOUT_MS = 60_000;
/** The tail of the child's stderr kept for the reason: enough for ONNX Runtime's error line. */
const STDERR_KEPT_BYTES = 2048;
const TOLERANCE = 1e-5;
const CACHE_FILE_PREFIX = 'native-probe-';

export interface NativeProbeOptions {
  /** Default: from `OUTPOST_PROBE_NATIVE`. */
  readonly mode?: ProbeMode;
  /** Where verdicts are cached; default `defaultCacheDir()`. */
  readonly cacheDir?: string;
  readonly timeoutMs?: number;
}

/** What the probe examined: the module's entry (for the child to load) and the directory of its native binaries. */
export interface ProbeTarget {
  readonly entry: string;
  readonly bindingDir: string;
}

export interface ProbeVerdict {
  readonly ok: boolean;
  /** Why the native backend cannot serve, when `ok` is false. */
  readonly reason?: string;
  readonly durationMs: number;
  readonly probedAt: string;
}

export interface ProbeOutcome {
  readonly verdict: ProbeVerdict;
  /** True when the verdict came from the cache and no child ran. */
  readonly cached: boolean;
  /** The cache file holding the verdict, when it could be written or was read. */
  readonly cacheFile: string | undefined;
}

export function probeModeFromEnv(env: NodeJS.ProcessEnv = process.env): ProbeMode {
  const value = env.OUTPOST_PROBE_NATIVE?.trim().toLowerCase();
  if (value === '1' || value === 'always' || value === 'true') return 'always';
  if (value === '0' || value === 'never' || value === 'false') return 'never';
  return 'auto';
}

/**
 * `$OUTPOST_CACHE_DIR`, else `$XDG_CACHE_HOME/outpost`, else `~/.cache/outpost` (the XDG base-directory default).
 * The systemd unit and the container image point `OUTPOST_CACHE_DIR` into the agent's data directory, the one place
 * a hardened service may write.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.OUTPOST_CACHE_DIR !== undefined && env.OUTPOST_CACHE_DIR !== '') return env.OUTPOST_CACHE_DIR;
  if (env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== '') return join(env.XDG_CACHE_HOME, 'outpost');
  return join(homedir(), '.cache', 'outpost');
}

export function needsProbe(mode: ProbeMode, platform: string = process.platform, arch: string = process.arch): boolean {
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  return !KNOWN_GOOD_PLATFORMS.has(`${platform}-${arch}`);
}

const identitySchema = z.object({
  node: z.string(),
  modules: z.string(),
  platform: z.string(),
  arch: z.string(),
  bindingDir: z.string(),
  files: z.array(z.object({ name: z.string(), bytes: z.number(), mtimeMs: z.number() })),
});
type Identity = z.infer<typeof identitySchema>;

const cacheFileSchema = z.object({
  identity: identitySchema,
  verdict: z.object({
    ok: z.boolean(),
    reason: z.string().optional(),
    durationMs: z.number(),
    probedAt: z.string(),
  }),
});

/**
 * The binary's identity: every file beside the binding (the binding, libonnxruntime, and provider libraries, whose
 * arrival changes what loads) by size and mtime, plus the Node ABI that loads it. Hashing the 25–45 MB library
 * would cost more at each start than the stat-based key, which changes on every reinstall anyway.
 */
export async function bindingIdentity(bindingDir: string): Promise<Identity> {
  const names = (await readdir(bindingDir)).sort();
  const files = await Promise.all(
    names.map(async (name) => {
      const s = await stat(join(bindingDir, name));
      return { name, bytes: s.size, mtimeMs: s.mtimeMs };
    }),
  );
  return {
    node: process.version,
    modules: process.versions.modules,
    platform: process.platform,
    arch: process.arch,
    bindingDir,
    files,
  };
}

function cacheFileOf(cacheDir: string, identity: Identity): string {
  const key = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 32);
  return join(cacheDir, `${CACHE_FILE_PREFIX}${key}.json`);
}

async function readCached(file: string, identity: Identity): Promise<ProbeVerdict | undefined> {
  try {
    const parsed = cacheFileSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    // The key is a hash; the stored identity guards against a collision or a hand-edited file.
    if (!parsed.success || JSON.stringify(parsed.data.identity) !== JSON.stringify(identity)) return undefined;
    return parsed.data.verdict;
  } catch {
    return undefined;
  }
}

async function writeCached(
  file: string,
  cacheDir: string,
  identity: Identity,
  verdict: ProbeVerdict,
): Promise<boolean> {
  try {
    await mkdir(cacheDir, { recursive: true });
    // Temp file + rename: two processes probing at once each leave a whole file, never a torn one.
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, `${JSON.stringify({ identity, verdict }, null, 2)}\n`);
    await rename(temp, file);
    return true;
  } catch (error) {
    log.warn({ cacheDir, error: messageOf(error) }, 'native probe verdict not cached; the probe will run again');
    return false;
  }
}

/**
 * The child: CommonJS through `-e`, so it needs no file of ours on disk and loads the module exactly as the
 * native backend would (its resolved entry). It prints the output values as JSON; anything else is a failure.
 */
const CHILD_SCRIPT = `'use strict';
const spec = JSON.parse(process.argv[1]);
(async () => {
  const ort = require(spec.entry);
  const session = await ort.InferenceSession.create(new Uint8Array(Buffer.from(spec.model, 'base64')), { logSeverityLevel: 4 });
  const out = await session.run({ [spec.input]: new ort.Tensor('float32', Float32Array.from(spec.x), spec.dims) });
  process.stdout.write(JSON.stringify(Array.from(out[spec.output].data)));
})().catch((e) => { process.stderr.write(String((e && e.message) || e)); process.exitCode = 1; });
`;

/** Verdicts that describe the binary (cached) rather than the moment (a timeout, a spawn failure: not cached). */
interface ChildResult {
  readonly ok: boolean;
  readonly reason?: string;
  readonly cacheable: boolean;
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').trim();
}

function judge(stdout: string): ChildResult {
  let values: unknown;
  try {
    values = JSON.parse(stdout);
  } catch {
    values = undefined;
  }
  const got = Array.isArray(values) ? values : [];
  const right =
    got.length === PROBE_EXPECTED.length &&
    got.every((v, i) => typeof v === 'number' && Math.abs(v - (PROBE_EXPECTED[i] ?? NaN)) <= TOLERANCE);
  if (right) return { ok: true, cacheable: true };
  return {
    ok: false,
    reason: `onnxruntime-node computed a wrong result in the probe process: got ${stdout.slice(0, 200) || 'nothing'}, expected ${JSON.stringify(PROBE_EXPECTED)}`,
    cacheable: true,
  };
}

function runChild(target: ProbeTarget, timeoutMs: number): Promise<ChildResult> {
  const spec = JSON.stringify({
    entry: target.entry,
    model: Buffer.from(probeModelBytes()).toString('base64'),
    input: PROBE_INPUT_NAME,
    output: PROBE_OUTPUT_NAME,
    x: PROBE_INPUT,
    dims: PROBE_DIMS,
  });
  const argv = [process.execPath, '-e', CHILD_SCRIPT, spec];
  // A deliberate crash must not leave a core dump (tens of MB) per probe: the shell sets RLIMIT_CORE to 0 and
  // `exec`s node in its place, so the signal we see is node's own.
  const [file, args] =
    process.platform === 'win32'
      ? [process.execPath, argv.slice(1)]
      : ['/bin/sh', ['-c', 'ulimit -c 0; exec "$@"', 'outpost-probe', ...argv]];
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEPT_BYTES);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({
        ok: false,
        reason: `could not start the onnxruntime-node probe process: ${error.message}`,
        cacheable: false,
      });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        resolve({
          ok: false,
          reason: `onnxruntime-node did not finish the probe within ${timeoutMs / 1000} s (killed)`,
          cacheable: false,
        });
      } else if (signal !== null) {
        resolve({ ok: false, reason: `onnxruntime-node crashed the probe process with ${signal}`, cacheable: true });
      } else if (code !== 0) {
        const detail = lastLine(stderr);
        resolve({
          ok: false,
          reason: `onnxruntime-node failed in the probe process (exit ${code ?? '?'})${detail ? `: ${detail}` : ''}`,
          // 126/127: the shell could not run node at all, which says nothing about the binding.
          cacheable: code !== 126 && code !== 127,
        });
      } else {
        resolve(judge(stdout));
      }
    });
  });
}

/**
 * The verdict on `target`'s native binary: from the cache when this identity was probed before, else from a child
 * process that loads it and runs the probe model. Never throws: a failure to probe is a failing verdict.
 */
export async function probeNative(target: ProbeTarget, options: NativeProbeOptions = {}): Promise<ProbeOutcome> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  let identity: Identity;
  try {
    identity = await bindingIdentity(target.bindingDir);
  } catch (error) {
    const reason = `onnxruntime-node has no native binaries for ${process.platform}-${process.arch} (${messageOf(error)})`;
    return {
      verdict: { ok: false, reason, durationMs: 0, probedAt: new Date().toISOString() },
      cached: false,
      cacheFile: undefined,
    };
  }
  const file = cacheFileOf(cacheDir, identity);
  const cached = await readCached(file, identity);
  if (cached !== undefined) return { verdict: cached, cached: true, cacheFile: file };

  log.info({ bindingDir: target.bindingDir }, 'probing onnxruntime-node in a child process');
  const started = performance.now();
  const result = await runChild(target, options.timeoutMs ?? PROBE_TIMEOUT_MS);
  const verdict: ProbeVerdict = {
    ok: result.ok,
    ...(result.reason === undefined ? {} : { reason: result.reason }),
    durationMs: Math.round(performance.now() - started),
    probedAt: new Date().toISOString(),
  };
  if (!verdict.ok)
    log.warn({ reason: verdict.reason, bindingDir: target.bindingDir }, 'native backend failed its probe');
  const stored = result.cacheable && (await writeCached(file, cacheDir, identity, verdict));
  return { verdict, cached: false, cacheFile: stored ? file : undefined };
}
