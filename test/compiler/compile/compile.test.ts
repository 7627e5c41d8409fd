import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { compile } from '../../../compiler/compile.js';
import { parseBudget } from '../../../compiler/evaluate/budget.js';
import { GraphBuilder, loadModel as loadOnnx, mainGraph, saveModel } from '../../../compiler/onnx/index.js';
import { generateSigningKeys, verifyArtifact } from '../../../runtime/artifact/index.js';
import { loadModel } from '../../../runtime/model/load.js';
import { readTestVectors } from '../../../runtime/model/test-vectors.js';
import { encodeNpy } from '../../../runtime/tensor/npy.js';
import { allClose } from '../../../runtime/tensor/tensor.js';
import { tmpDir } from '../../helpers/tmp.js';
import { sampleCnn, sensitiveMlp } from '../../helpers/compile-models.js';

/** Every shipped variant loads on each backend it lists and passes the artifact's own test vectors. */
async function selfTest(dir: string): Promise<void> {
  const { manifest } = await verifyArtifact(dir);
  for (const variant of manifest.variants) {
    for (const backend of variant.backends) {
      const model = await loadModel(dir, { variant: variant.id, backend, warmup: 0 });
      try {
        const tolerance = variant.tolerance ?? manifest.testVectors?.tolerance ?? { atol: 0, rtol: 0 };
        for (const vector of await readTestVectors(model)) {
          const out = await model.infer(vector.inputs);
          for (const [name, expected] of Object.entries(vector.expected)) {
            const result = allClose(out[name]?.data ?? [], expected.data, tolerance.atol, tolerance.rtol);
            expect(result.ok, `${variant.id} on ${backend}, ${name}`).toBe(true);
          }
        }
      } finally {
        await model.release();
      }
    }
  }
}

describe('compile: cross-compiling', () => {
  it('ships ranked int8 and fp32 variants for the device to choose, signed, and each passes its self-test', async () => {
    const dir = await tmpDir();
    const keys = generateSigningKeys();
    const out = join(dir, 'cnn-a72');
    const report = await compile({
      model: await sampleCnn(dir),
      target: 'arm64:cortex-a72',
      output: out,
      signKey: keys.privateKeyPem,
    });
    expect(report.target).toBe('arm64:cortex-a72');
    expect(report.selection).toBe('device');
    expect(report.variants.map((v) => v.id)).toEqual(['int8', 'fp32']);
    for (const v of report.variants) {
      expect(v.bytes).toBeGreaterThan(0);
      expect(v.accuracy?.cosine).toBeGreaterThanOrEqual(0.99);
      expect(v.latency_p50_ms).toBeUndefined();
    }
    expect(report.warnings.some((w) => w.includes('synthetic'))).toBe(true);
    const int8 = report.variants[0];
    expect((int8?.bytes ?? Infinity) / (report.variants[1]?.bytes ?? 0)).toBeLessThan(0.35);
    const verified = await verifyArtifact(out, { trustedKeys: [keys.publicKeyPem], target: { arch: 'arm64' } });
    expect(verified.signer).toBe(keys.keyId);
    expect(verified.manifest.selection).toBe('device');
    expect(verified.manifest.target).toMatchObject({ profile: 'arm64:cortex-a72', arch: 'arm64', cpu: 'cortex-a72' });
    expect(verified.manifest.testVectors?.cases.length).toBe(2);
    await selfTest(out);
  });

  it('makes fp16 for CUDA with float32 edges and the TensorRT → CUDA → CPU provider order', async () => {
    const dir = await tmpDir();
    const out = join(dir, 'cnn-orin');
    const report = await compile({ model: await sampleCnn(dir), target: 'cuda:sm_87', output: out });
    expect(report.variants.map((v) => v.precision)).toEqual(['fp16', 'fp32']);
    const { manifest } = await verifyArtifact(out);
    const fp16 = manifest.variants.find((v) => v.id === 'fp16');
    expect(fp16?.executionProviders).toEqual(['tensorrt', 'cuda', 'cpu']);
    expect(fp16?.format).toBe('onnx');
    const model = await loadOnnx(join(out, fp16?.file ?? ''));
    const graph = mainGraph(model.proto);
    const elemType = (v: (typeof graph.input)[number]) =>
      v.type?.value.case === 'tensorType' ? v.type.value.value.elemType : 0;
    expect(graph.input.map(elemType)).toEqual([1]); // FLOAT at the edges …
    expect(graph.output.map(elemType)).toEqual([1]);
    expect(graph.node.filter((n) => n.opType === 'Cast').length).toBeGreaterThanOrEqual(2); // … cast to FLOAT16 inside
    expect(graph.initializer.some((t) => t.dataType === 10)).toBe(true);
    await selfTest(out);
  });
});

describe('compile: for this host', () => {
  it('measures every variant, ranks by latency and ships ONNX Runtime format', async () => {
    const dir = await tmpDir();
    const out = join(dir, 'artifact.tar.gz');
    const report = await compile({ model: await sampleCnn(dir), target: 'host', output: out });
    expect(report.selection).toBe('fixed');
    const latencies = report.variants.map((v) => v.latency_p50_ms ?? NaN);
    expect(latencies.every((l) => l > 0)).toBe(true);
    expect([...latencies].sort((a, b) => a - b)).toEqual(latencies);
    expect(report.variants.every((v) => v.format === 'ort')).toBe(true);
    const model = await loadModel(out);
    expect(model.variant.id).toBe(report.selected);
    await model.release();
  });
});

describe('compile: the accuracy gate', () => {
  it('refuses to ship int8 that misses the budget, and writes nothing', async () => {
    const dir = await tmpDir();
    const out = join(dir, 'strict');
    await expect(
      compile({
        model: await sampleCnn(dir),
        target: 'x86_64:avx2',
        output: out,
        precision: 'int8',
        budget: parseBudget('cosine=0.99999999'),
      }),
    ).rejects.toMatchObject({
      code: 'ACCURACY_BUDGET_MISSED',
      message: expect.stringMatching(/int8: logits: cosine 0\.9\d+ < 0\.99999999/) as unknown,
    });
    expect(existsSync(out)).toBe(false);
  });

  it('ships it flagged under allowAccuracyLoss', async () => {
    const dir = await tmpDir();
    const out = join(dir, 'waived');
    const report = await compile({
      model: await sampleCnn(dir),
      target: 'x86_64:avx2',
      output: out,
      precision: 'int8',
      budget: parseBudget('cosine=0.99999999'),
      allowAccuracyLoss: true,
    });
    expect(report.variants[0]?.within_budget).toBe(false);
    const { manifest } = await verifyArtifact(out);
    expect(manifest.variants[0]?.accuracyWaived).toBe(true);
  });

  it('keeps the one deliberately sensitive node in float and names it', async () => {
    const dir = await tmpDir();
    const { path, sensitive } = await sensitiveMlp(dir);
    const report = await compile({
      model: path,
      target: 'x86_64:avx512-vnni',
      output: join(dir, 'mixed'),
      precision: 'int8',
      calibration: 'synthetic',
    });
    const [variant] = report.variants;
    expect(variant?.precision).toBe('mixed');
    expect(variant?.accuracy?.cosine).toBeGreaterThanOrEqual(0.99);
    const kept = variant?.excluded_nodes.filter((e) => e.reason.includes('for accuracy')) ?? [];
    expect(kept.map((e) => e.node)).toEqual([sensitive]);
    expect(variant?.notes.join(' ')).toMatch(/int8 alone: cosine 0\.\d+/);
  });
});

describe('compile: calibration data', () => {
  it('calibrates on images pre-processed by --preprocess and records the pipeline', async () => {
    const dir = await tmpDir();
    const images = join(dir, 'images');
    await mkdir(images);
    for (let i = 0; i < 8; i++) {
      await sharp({ create: { width: 96, height: 80, channels: 3, background: { r: 30 * i, g: 200 - 20 * i, b: 90 } } })
        .png()
        .toFile(join(images, `img${i}.png`));
    }
    const out = join(dir, 'with-pipeline');
    const report = await compile({
      model: await sampleCnn(dir),
      target: 'arm64',
      output: out,
      calibration: images,
      preprocess: 'size=64x64,resize=center-crop,mean=0.5:0.5:0.5,std=0.25:0.25:0.25',
    });
    expect(report.calibration).toMatchObject({ synthetic: false, samples: 6, evaluation_samples: 2 });
    const { manifest } = await verifyArtifact(out);
    expect(manifest.pipeline.preprocess).toMatchObject({
      width: 64,
      height: 64,
      resize: 'center-crop',
      mean: [0.5, 0.5, 0.5],
      std: [0.25, 0.25, 0.25],
    });
  });

  it('names a calibration tensor of the wrong shape', async () => {
    const dir = await tmpDir();
    const data = join(dir, 'cal');
    await mkdir(data);
    await writeFile(
      join(data, 'bad.npy'),
      encodeNpy({ dtype: 'float32', shape: [1, 3, 32, 32], data: new Float32Array(3 * 32 * 32) }),
    );
    const refused = compile({
      model: await sampleCnn(dir),
      target: 'arm64',
      output: join(dir, 'o'),
      calibration: data,
    });
    await expect(refused).rejects.toMatchObject({ code: 'CALIBRATION_INVALID' });
    await expect(refused).rejects.toThrow('bad.npy');
    await expect(refused).rejects.toThrow('"image"');
  });
});

describe('compile: bad input', () => {
  it('refuses a non-ONNX or truncated model', async () => {
    const dir = await tmpDir();
    const truncated = join(dir, 'truncated.onnx');
    await writeFile(truncated, (await readFile(await sampleCnn(dir))).subarray(0, 500));
    await expect(compile({ model: truncated, target: 'arm64', output: join(dir, 'o') })).rejects.toMatchObject({
      code: 'MODEL_INVALID',
    });
    await writeFile(join(dir, 'text.onnx'), 'hello');
    await expect(
      compile({ model: join(dir, 'text.onnx'), target: 'arm64', output: join(dir, 'o') }),
    ).rejects.toMatchObject({ code: 'MODEL_INVALID' });
  });

  it('lists valid targets for an unknown target or cpu', async () => {
    const dir = await tmpDir();
    const model = await sampleCnn(dir);
    await expect(compile({ model, target: 'riscv64', output: join(dir, 'o') })).rejects.toMatchObject({
      code: 'UNKNOWN_TARGET',
      message: expect.stringContaining('arm64:cortex-a72') as unknown,
    });
    await expect(compile({ model, target: 'arm64:m1', output: join(dir, 'o') })).rejects.toMatchObject({
      code: 'UNKNOWN_TARGET',
      message: expect.stringContaining('cortex-a76') as unknown,
    });
  });

  it('asks for --input-shape when a dimension it must know is symbolic', async () => {
    const dir = await tmpDir();
    const { REAL_MODELS } = await import('../../helpers/models.js');
    await expect(
      compile({ model: REAL_MODELS.sileroV5, target: 'arm64', output: join(dir, 'o') }),
    ).rejects.toMatchObject({
      code: 'SYMBOLIC_DIM_UNBOUND',
      message: expect.stringContaining('--input-shape input=') as unknown,
    });
  });

  it('skips a node it cannot quantise with a warning, or fails naming it when int8 was required for it', async () => {
    const dir = await tmpDir();
    const g = new GraphBuilder('attention-ish');
    const x = g.input('x', 'float32', [1, 4, 8]);
    const w = g.initializer(
      'w',
      Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)),
      [8, 8],
    );
    const h = g.node('MatMul', [x, w], {}, { name: 'projection' });
    const scores = g.node('MatMul', [h, g.node('Transpose', [h], { perm: [0, 2, 1] })], {}, { name: 'scores' });
    g.output(scores, 'float32', [1, 4, 4]);
    const path = join(dir, 'attn.onnx');
    await saveModel(g.build({ opsets: { '': 17 } }), path);
    const report = await compile({
      model: path,
      target: 'arm64',
      output: join(dir, 'ok'),
      quantization: 'static',
      precision: 'int8',
      allowAccuracyLoss: true,
    });
    expect(report.warnings.some((w) => w.includes('"scores"'))).toBe(true);
    await expect(
      compile({
        model: path,
        target: 'arm64',
        output: join(dir, 'no'),
        quantization: 'static',
        precision: 'int8',
        requireQuantized: ['scores'],
      }),
    ).rejects.toMatchObject({ code: 'QUANTIZATION_FAILED', message: expect.stringContaining('scores') as unknown });
    expect(existsSync(join(dir, 'no'))).toBe(false);
  });

  it('names a calibration tensor of the wrong dtype', async () => {
    const dir = await tmpDir();
    const data = join(dir, 'cal');
    await mkdir(data);
    await writeFile(
      join(data, 'f64.npy'),
      encodeNpy({ dtype: 'float64', shape: [1, 3, 64, 64], data: new Float64Array(3 * 64 * 64) }),
    );
    await expect(
      compile({ model: await sampleCnn(dir), target: 'arm64', output: join(dir, 'o'), calibration: data }),
    ).rejects.toMatchObject({
      code: 'CALIBRATION_INVALID',
      message: expect.stringMatching(/f64\.npy.*float32/) as unknown,
    });
  });

  it('refuses an unwritable output before doing any work', async () => {
    const dir = await tmpDir();
    await writeFile(join(dir, 'file'), '');
    await expect(
      compile({ model: await sampleCnn(dir), target: 'arm64', output: join(dir, 'file', 'artifact') }),
    ).rejects.toMatchObject({ code: 'OUTPUT_UNWRITABLE' });
  });
});

describe('compile: a variant called int8 is int8', () => {
  it('drops an "int8" build that quantised nothing (Silero VAD: LSTMs inside If), names why, and ships fp32 first', async () => {
    const dir = await tmpDir();
    const { REAL_MODELS } = await import('../../helpers/models.js');
    const report = await compile({
      model: REAL_MODELS.sileroLegacy,
      target: 'arm64',
      output: join(dir, 'vad'),
      inputShapes: { input: [1, 512] },
    });
    expect(report.variants.map((v) => v.id)).toEqual(['fp32']);
    const [rejected] = report.rejected;
    expect(rejected?.id).toBe('int8');
    expect(rejected?.reason).toMatch(/quantised 0\.0% of the weights .* not an int8 model/);
    expect(rejected?.reason).toMatch(/inside If\/Loop\/Scan subgraphs/);
    // Static quantisation asked for explicitly: no ORT call with an empty fetch list, a typed refusal instead.
    const refused = compile({
      model: REAL_MODELS.sileroLegacy,
      target: 'arm64',
      output: join(dir, 'static'),
      inputShapes: { input: [1, 512] },
      precision: 'int8',
      quantization: 'static',
    });
    await expect(refused).rejects.toMatchObject({ code: 'QUANTIZATION_FAILED' });
    await expect(refused).rejects.toThrow(/int8: quantised 0\.0% of the weights/);
    await expect(refused).rejects.not.toThrow(/fetches/);
  });
});
