import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { saveModel } from '../../compiler/onnx/index.js';
import { encodeNpy } from '../../runtime/tensor/npy.js';
import sharp from 'sharp';
import { buildCnn, buildMlp } from '../../models/samples.js';
import { sampleCnnArtifact, type SampleArtifact } from '../helpers/artifacts.js';
import { runCli } from '../helpers/cli.js';
import { REAL_MODELS } from '../helpers/models.js';
import { suiteTmpDir } from '../helpers/tmp.js';

let dir: string;
let dispose: () => Promise<void>;
let mlp: string;
let artifact: SampleArtifact;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  mlp = join(dir, 'mlp.onnx');
  await saveModel(buildMlp().proto, mlp);
  artifact = await sampleCnnArtifact(dir, { signed: true });
  await writeFile(
    join(dir, 'x.json'),
    JSON.stringify({ shape: [1, 16], datatype: 'FP32', data: Array.from({ length: 16 }, (_, i) => i / 16) }),
  );
  await writeFile(join(dir, 'image.npy'), encodeNpy({ dtype: 'float32', shape: [1, 3, 64, 64], data: artifact.input }));
  await writeFile(join(dir, 'pub.pem'), artifact.keys.publicKeyPem);
});
afterAll(() => dispose());

/** Errors are one line on stderr, `outpost: <message> [CODE]`, with a non-zero exit. */
function expectOneLineError(result: { code: number; stderr: string }, code: string): void {
  expect(result.code).toBe(1);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^outpost: .+ \\[${code}\\]$`));
}

describe('outpost inspect', () => {
  it('describes a plain model: inputs, opsets, op histogram, parameters', async () => {
    const { code, stdout } = await runCli(['inspect', mlp, '--json']);
    expect(code).toBe(0);
    const info = JSON.parse(stdout) as Record<string, unknown>;
    expect(info).toMatchObject({
      kind: 'model',
      inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 16] }],
      outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
      graph: { opsets: { '': 17 }, ops: { Gemm: 3, Relu: 2 }, parameters: 16 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10 },
    });
  });

  it('describes an artifact: variants with hashes, signer, test vectors', async () => {
    const { code, stdout } = await runCli(['inspect', artifact.dir, '--json', '--trust-key', join(dir, 'pub.pem')]);
    expect(code).toBe(0);
    const info = JSON.parse(stdout) as {
      kind: string;
      signer: string;
      variants: { id: string; sha256: string }[];
      testVectors: number;
    };
    expect(info.kind).toBe('artifact');
    expect(info.signer).toBe(artifact.keys.keyId);
    expect(info.variants.map((v) => v.id)).toEqual(['fp32', 'fp32-copy']);
    expect(info.variants[0]?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(info.testVectors).toBe(1);
  });

  it('prints a human summary', async () => {
    const { code, stdout } = await runCli(['inspect', REAL_MODELS.sileroV5]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/input\s+state\s+float32\[2, state\[1\], 128\]/);
    expect(stdout).toMatch(/LSTM×4/);
  });
});

describe('outpost run', () => {
  it('runs a JSON input on each backend and agrees', async () => {
    const outputs: number[][] = [];
    for (const backend of ['native', 'wasm']) {
      const { code, stdout } = await runCli([
        'run',
        mlp,
        '--input',
        join(dir, 'x.json'),
        '--backend',
        backend,
        '--json',
      ]);
      expect(code).toBe(0);
      const result = JSON.parse(stdout) as {
        backend: string;
        outputs: { logits: { shape: number[]; data: number[] } };
      };
      expect(result.backend).toBe(backend);
      expect(result.outputs.logits.shape).toEqual([1, 10]);
      outputs.push(result.outputs.logits.data);
    }
    outputs[0]?.forEach((v, i) => expect(Math.abs(v - (outputs[1]?.[i] ?? NaN))).toBeLessThan(1e-4));
  });

  it('runs an artifact on a .npy input with its post-processing and labels', async () => {
    const { code, stdout } = await runCli(['run', artifact.dir, '--input', join(dir, 'image.npy'), '--json']);
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as { postprocess: { top: { index: number; label: string }[] } };
    expect(result.postprocess.top).toHaveLength(3);
    const best = Array.from(artifact.expected).indexOf(Math.max(...artifact.expected));
    expect(result.postprocess.top[0]).toMatchObject({ index: best, label: `class-${best}` });
  });

  it('pre-processes an image for an image-shaped input, and refuses a corrupt one', async () => {
    const cnn = join(dir, 'cnn.onnx');
    await saveModel(buildCnn().proto, cnn);
    const png = join(dir, 'photo.png');
    await sharp({ create: { width: 80, height: 48, channels: 3, background: { r: 200, g: 30, b: 90 } } })
      .png()
      .toFile(png);
    const { code, stdout } = await runCli(['run', cnn, '--input', png, '--json']);
    expect(code).toBe(0);
    expect((JSON.parse(stdout) as { outputs: { logits: { shape: number[] } } }).outputs.logits.shape).toEqual([1, 10]);
    const corrupt = join(dir, 'corrupt.jpg');
    await writeFile(corrupt, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(64, 1)]));
    expectOneLineError(await runCli(['run', cnn, '--input', corrupt]), 'INPUT_INVALID');
  });

  it('fails in one line naming an unreadable input file', async () => {
    const result = await runCli(['run', mlp, '--input', join(dir, 'missing.json')]);
    expectOneLineError(result, 'FILE_NOT_FOUND');
    expect(result.stderr).toContain('missing.json');
  });

  it('fails in one line on malformed JSON and on a wrong shape', async () => {
    await writeFile(join(dir, 'bad.json'), '{"shape": [1, 16], "data": [1, 2,');
    expectOneLineError(await runCli(['run', mlp, '--input', join(dir, 'bad.json')]), 'INPUT_INVALID');
    await writeFile(join(dir, 'short.json'), JSON.stringify({ shape: [1, 8], data: new Array(8).fill(0) }));
    const result = await runCli(['run', mlp, '--input', join(dir, 'short.json')]);
    expectOneLineError(result, 'INPUT_SHAPE_MISMATCH');
    expect(result.stderr).toContain('"x"');
  });

  it("keeps ONNX Runtime's own log lines off stderr unless --verbose", async () => {
    // sr = 0 sends Silero down a branch that fails inside ONNX Runtime, which logs the failure itself.
    const bad = join(dir, 'vad-bad.json');
    await writeFile(
      bad,
      JSON.stringify({
        input: { datatype: 'FP32', shape: [1, 512], data: new Array(512).fill(0) },
        state: { datatype: 'FP32', shape: [2, 1, 128], data: new Array(256).fill(0) },
        sr: { datatype: 'INT64', shape: [], data: [0] },
      }),
    );
    const quiet = await runCli(['run', REAL_MODELS.sileroV5, '--input', bad]);
    expectOneLineError(quiet, 'INFERENCE_FAILED');
    const verbose = await runCli(['run', REAL_MODELS.sileroV5, '--input', bad, '--verbose']);
    expect(verbose.stderr).toMatch(/onnxruntime/);
  });

  it('--debug adds the stack', async () => {
    const result = await runCli(['run', mlp, '--input', join(dir, 'missing.json'), '--debug']);
    expect(result.code).toBe(1);
    expect(result.stderr.split('\n').length).toBeGreaterThan(3);
    expect(result.stderr).toMatch(/at .+\.ts:\d+/);
  });

  it('refuses an artifact signed by an untrusted key', async () => {
    const other = await sampleCnnArtifact(join(dir, 'other'), { signed: true });
    const result = await runCli([
      'run',
      other.dir,
      '--input',
      join(dir, 'image.npy'),
      '--trust-key',
      join(dir, 'pub.pem'),
    ]);
    expectOneLineError(result, 'ARTIFACT_SIGNATURE_UNTRUSTED');
  });
});

describe('outpost bench', () => {
  it('--json prints exactly the object of the CLI contract', async () => {
    const { code, stdout } = await runCli([
      'bench',
      mlp,
      '--backend',
      'all',
      '--iterations',
      '20',
      '--warmup',
      '2',
      '--json',
    ]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as {
      model: string;
      host: Record<string, unknown>;
      results: Record<string, unknown>[];
    };
    expect(Object.keys(report).sort()).toEqual(['host', 'model', 'results']);
    expect(Object.keys(report.host).sort()).toEqual(['arch', 'cpuModel', 'cpus', 'platform']);
    expect(report.results.map((r) => `${String(r.subject)}/${String(r.backend)}`).sort()).toEqual([
      'outpost/native',
      'outpost/wasm',
      'raw-ort/native',
      'raw-ort/wasm',
    ]);
    for (const r of report.results) {
      expect(Object.keys(r).sort()).toEqual(
        [
          'backend',
          'load_ms',
          'mean_ms',
          'p50_ms',
          'p90_ms',
          'p99_ms',
          'rss_mb',
          'subject',
          'throughput_per_s',
          'variant',
        ].sort(),
      );
      for (const key of ['p50_ms', 'p90_ms', 'p99_ms', 'mean_ms', 'throughput_per_s', 'load_ms']) {
        expect(r[key]).toBeGreaterThan(0);
      }
      expect((r.p50_ms as number) <= (r.p99_ms as number)).toBe(true);
    }
  });

  it('names a symbolic dimension it cannot default, and accepts --input-shape for it', async () => {
    const unbound = await runCli(['bench', REAL_MODELS.sileroV5, '--iterations', '5']);
    expectOneLineError(unbound, 'SYMBOLIC_DIM_UNBOUND');
    expect(unbound.stderr).toContain('--input-shape input=');
    // Silero needs a real sample rate, which synthetic data cannot guess: bound shapes, inputs from a file.
    const vad = join(dir, 'vad.json');
    const vadInputs = {
      input: { datatype: 'FP32', shape: [1, 512], data: new Array(512).fill(0) },
      state: { datatype: 'FP32', shape: [2, 1, 128], data: new Array(256).fill(0) },
      sr: { datatype: 'INT64', shape: [], data: [16000] },
    };
    await writeFile(vad, JSON.stringify(vadInputs));
    const args = ['bench', REAL_MODELS.sileroV5, '--iterations', '5', '--warmup', '1', '--input-shape', 'input=1,512'];
    const bound = await runCli([...args, '--input-shape', 'state=2,1,128', '--input', vad, '--json']);
    // Only progress on stderr (timestamped lines: stderr is not a terminal here), the report on stdout.
    for (const line of bound.stderr.trim().split('\n')) expect(line).toMatch(/^\d{4}-[\d-]+T[\d:.]+Z bench: measure /);
    expect(bound.code).toBe(0);
  });
});
