import { spawn } from 'node:child_process';
import { appendFile, lstat, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKeys, packArtifact } from '../../runtime/artifact/index.js';
import { readCapture } from '../../runtime/server/index.js';
import type { TuneChoiceFile } from '../../runtime/tuning/choice.js';
import { runCli } from '../helpers/cli.js';
import { cliEntry } from '../helpers/cli-entry.js';
import { ROOT } from '../helpers/models.js';
import { suiteTmpDir, tmpDir } from '../helpers/tmp.js';
import { call, json, type Reply } from '../helpers/http-client.js';
import { buildFixture } from '../helpers/serving-artifacts.js';

/** `outpost serve` as a real child process (from source, through tsx), spoken to over HTTP and a unix socket. */
const CLI_START_TIMEOUT_MS = 30_000; // ms for tsx to load the CLI and the models to load
const TOKEN = 'serve-test-token';

interface Started {
  url: string;
  auth: boolean;
  models: { name: string; version: string; variant: string; backend: string }[];
}

let dir: string;
let dispose: () => Promise<void>;
let paths: { mlp: string; classifier: string; classifier2Archive: string; echo: string };

beforeAll(async () => {
  const tmp = await suiteTmpDir();
  ({ dir, dispose } = tmp);
  const [mlp, classifier, classifier2, echo] = await Promise.all([
    buildFixture(dir, 'mlp'),
    buildFixture(dir, 'classifier'),
    buildFixture(dir, 'classifier2'),
    buildFixture(dir, 'echo'),
  ]);
  const classifier2Archive = join(dir, 'classifier-2.0.0.tar.gz');
  await packArtifact(classifier2, classifier2Archive);
  paths = { mlp, classifier, classifier2Archive, echo };
});
afterAll(async () => {
  await dispose();
});

/** Starts `outpost serve … --json` and waits for the JSON it prints once listening; stop() signals it. */
async function startServe(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [...cliEntry(), 'serve', ...args, '--json'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    const started = await new Promise<Started>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`outpost serve never listened: ${stderr}`)),
        CLI_START_TIMEOUT_MS,
      );
      child.stdout.on('data', () => {
        try {
          resolve(JSON.parse(stdout) as Started);
          clearTimeout(timer);
        } catch {
          // not all of it yet
        }
      });
      void exited.then(() => reject(new Error(`outpost serve exited: ${stderr}`)));
    });
    return {
      started,
      stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
        child.kill(signal);
        return { code: await exited, stderr };
      },
    };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

const mlpBody = JSON.stringify({
  inputs: [{ name: 'x', shape: [1, 16], datatype: 'FP32', data: Array.from({ length: 16 }, (_, i) => i / 10) }],
});
const auth = { authorization: `Bearer ${TOKEN}` };

/** The value of one Prometheus sample line, e.g. `name{model="mlp",version="1"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('outpost serve', () => {
  it('serves artifacts, archives and bare models with metrics until SIGTERM, then exits 0', async () => {
    const tokenFile = join(await tmpDir(), 'token');
    await writeFile(tokenFile, `${TOKEN}\n`);
    const serve = await startServe([
      paths.mlp,
      paths.classifier,
      paths.classifier2Archive,
      paths.echo,
      '--port',
      '0',
      '--token-file',
      tokenFile,
      '--max-batch-size',
      '4',
      '--max-queue-delay-ms',
      '1',
    ]);
    const { url, models } = serve.started;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(serve.started.auth).toBe(true);
    expect(models.map((m) => `${m.name}@${m.version}`)).toEqual([
      'mlp@1',
      'classifier@1.0.0',
      'classifier@2.0.0',
      'echo@0',
    ]);

    expect((await call(url, '/v2/health/ready')).status).toBe(200);
    expect((await call(url, '/v2/models/mlp/infer', { body: mlpBody })).status).toBe(401);
    const mlp = await call(url, '/v2/models/mlp/infer', { body: mlpBody, headers: auth });
    expect([mlp.status, json(mlp).model_name]).toEqual([200, 'mlp']);
    const meta = json(await call(url, '/v2/models/classifier', { headers: auth }));
    expect(meta.versions).toEqual(['1.0.0', '2.0.0']);
    const echo = await call(url, '/v2/models/echo/infer', {
      headers: auth,
      body: JSON.stringify({ inputs: [{ name: 'text', shape: [2], datatype: 'BYTES', data: ['a', 'b'] }] }),
    });
    expect(json(echo)).toMatchObject({ model_name: 'echo', outputs: [{ name: 'same', data: ['a', 'b'] }] });

    const metrics: Reply = await call(url, '/metrics', { headers: auth });
    expect(metrics.headers['content-type']).toContain('text/plain');
    const text = metrics.body.toString();
    expect(sample(text, 'outpost_inference_requests_total{model="mlp",version="1"}')).toBe(1);
    expect(sample(text, 'outpost_inference_requests_total{model="echo",version="0"}')).toBe(1);
    expect(sample(text, 'outpost_batch_size_count{model="mlp",version="1"}')).toBe(1);
    expect(sample(text, 'outpost_model_load_seconds{model="classifier",version="2.0.0"}')).toBeGreaterThan(0);
    expect((await call(url, '/metrics')).status).toBe(401);

    expect(await serve.stop('SIGTERM')).toEqual({ code: 0, stderr: '' });
  });

  it('applies a tuning file per model, serves on a unix socket with the token from $OUTPOST_TOKEN, and stops on SIGINT', async () => {
    const work = await tmpDir();
    const measured = { p50_ms: 1, p90_ms: 1, p99_ms: 1, mean_ms: 1, throughput_per_s: 1, calls_per_s: 1, load_ms: 1 };
    const choice: TuneChoiceFile = {
      model: 'mlp',
      version: '1',
      variant: 'fp32',
      backend: 'wasm',
      threads: 1,
      batch: { maxBatchSize: 2, maxQueueDelayMs: 1 },
      measured,
      criterion: 'p99',
    };
    const tuning = join(work, 'tuning.json');
    await writeFile(tuning, JSON.stringify([choice, { ...choice, model: 'classifier', version: '9', batch: null }]));
    const socket = join(work, 'outpost.sock');
    const serve = await startServe([paths.mlp, paths.classifier, '--socket', socket, '--tuning', tuning], {
      OUTPOST_TOKEN: TOKEN,
    });
    const { url, models } = serve.started;
    expect(url).toBe(`unix:${socket}`);
    // The tuned version gets the tuned backend; another version of a tuned model keeps the default choice.
    expect(models.map((m) => [m.name, m.backend])).toEqual([
      ['mlp', 'wasm'],
      ['classifier', 'native'],
    ]);
    const reply = await call(url, '/v2/models/mlp/infer', { body: mlpBody, headers: auth });
    expect([reply.status, json(reply).model_name]).toEqual([200, 'mlp']);
    const text = (await call(url, '/metrics', { headers: auth })).body.toString();
    expect(sample(text, 'outpost_batch_size_count{model="mlp",version="1"}')).toBe(1);
    expect(await serve.stop('SIGINT')).toEqual({ code: 0, stderr: '' });
    await expect(lstat(socket)).rejects.toThrow(/ENOENT/);
  });

  it('splits traffic by --weight, serves a --shadow version, and captures production calls with --capture', async () => {
    const capture = join(await tmpDir(), 'capture');
    const serve = await startServe([
      paths.classifier,
      paths.classifier2Archive,
      paths.mlp,
      '--port',
      '0',
      '--weight',
      'classifier@1.0.0=3',
      '--shadow',
      'classifier@2.0.0=100',
      '--capture',
      capture,
    ]);
    const models = serve.started.models as unknown as { name: string; version: string; role: string }[];
    expect(models.map((m) => [`${m.name}@${m.version}`, m.role])).toEqual([
      ['classifier@1.0.0', 'production'],
      ['classifier@2.0.0', 'shadow'],
      ['mlp@1', 'production'],
    ]);
    const { url } = serve.started;
    const meta = json(await call(url, '/v2/models/classifier'));
    expect(meta.versions).toEqual(['1.0.0']); // a shadow is not a production version
    const mlp = await call(url, '/v2/models/mlp/infer', { body: mlpBody });
    expect(mlp.status).toBe(200);
    expect(await serve.stop('SIGTERM')).toEqual({ code: 0, stderr: '' });
    const files = (await readdir(capture)).filter((f) => f.endsWith('.jsonl'));
    const records = (await Promise.all(files.map((f) => readCapture(join(capture, f))))).flat();
    expect(records.map((r) => `${r.model}@${r.version}`)).toEqual(['mlp@1']);
  });

  it.each([
    [
      'a path that does not exist',
      ['/nonexistent/model-artifact'],
      /\/nonexistent\/model-artifact.*\[FILE_NOT_FOUND\]/,
    ],
    [
      'a bare model when signatures are required',
      ['ECHO', '--trust-key', 'KEY'],
      /bare model.*\[ARTIFACT_SIGNATURE_MISSING\]/,
    ],
    ['--require-signature without a key', ['MLP', '--require-signature'], /needs --trust-key.*\[INVALID_ARGUMENT\]/],
    ['a tampered artifact', ['TAMPERED'], /\[ARTIFACT_HASH_MISMATCH\]/],
    [
      'a --shadow naming nothing served',
      ['MLP', '--shadow', 'mlp@9=50'],
      /--shadow mlp@9: no such.*\[INVALID_ARGUMENT\]/,
    ],
    [
      'a shadow with no production version',
      ['MLP', '--shadow', 'mlp@1=50'],
      /no production version.*\[INVALID_ARGUMENT\]/,
    ],
  ])('fails with one clear line and a non-zero exit for %s', async (_, args, message) => {
    const work = await tmpDir();
    const key = join(work, 'key.pub');
    await writeFile(key, generateSigningKeys().publicKeyPem);
    const tampered = await buildFixture(work, 'mlp');
    await appendFile(join(tampered, 'labels.txt'), 'class-10\n');
    const resolved = args.map((a) => ({ ECHO: paths.echo, MLP: paths.mlp, KEY: key, TAMPERED: tampered })[a] ?? a);
    const result = await runCli(['serve', ...resolved, '--port', '0']);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });
});
