import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asOnnxModel, cloneModel, loadModel, type OnnxModel } from '../../../compiler/onnx/index.js';
import { convertToFloat16 } from '../../../compiler/passes/fp16.js';
import { collectRanges } from '../../../compiler/calibration/collect.js';
import { convertToOrtFormat, hasQdq } from '../../../compiler/passes/ort-format.js';
import { quantizeStatic } from '../../../compiler/passes/quantize-static.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { buildCnn } from '../../../models/samples.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { OCR_MODELS, passContext, randomFloats } from '../../helpers/pass-runs.js';

/** The .ort must reproduce the .onnx's outputs within this (fusions reorder float arithmetic). */
const TOLERANCE = { atol: 1e-4, rtol: 1e-3 };

let workDir: string;
let dispose: () => Promise<void>;
beforeAll(async () => ({ dir: workDir, dispose } = await suiteTmpDir('outpost-ort-format-')));
afterAll(() => dispose());

const cnn = (): OnnxModel => asOnnxModel(buildCnn().proto);

describe('convertToOrtFormat', () => {
  it('writes an ORT-format file that both backends load and that reproduces the .onnx', async () => {
    const output = join(workDir, 'cnn.ort');
    const result = await convertToOrtFormat(cnn(), passContext('arm64:cortex-a72', workDir), { ...TOLERANCE, output });
    expect(result).toMatchObject({ path: output, level: 'extended', backends: ['native', 'wasm'] });
    // ORT format is a FlatBuffer whose file identifier is "ORTM" (onnxruntime/core/flatbuffers/schema/ort.fbs).
    expect((await readFile(output)).subarray(4, 8).toString('latin1')).toBe('ORTM');
    expect(result.bytes).toBeGreaterThan(0);
    for (const check of result.checks) {
      expect(check.ok, `${check.backend}: ${check.error ?? ''}`).toBe(true);
      expect(check.maxAbsErr).toBeLessThanOrEqual(TOLERANCE.atol + TOLERANCE.rtol * 10);
      expect(check.loadMs?.onnx).toBeGreaterThan(0);
      expect(check.loadMs?.ort).toBeGreaterThan(0);
    }
  });

  it('on the host, steps down for WASM, or stays at the full level natively when WASM is not needed', async () => {
    const context = passContext('host', workDir);
    const stepped = await convertToOrtFormat(cnn(), context, TOLERANCE);
    expect(stepped).toMatchObject({ level: 'extended', backends: ['native', 'wasm'] });
    expect(context.report.warnings.join('\n')).toMatch(/"all" \.ort fails on onnxruntime-web/);

    const full = await convertToOrtFormat(cnn(), passContext('host', workDir), { ...TOLERANCE, wasm: false });
    expect(full).toMatchObject({ level: 'all', backends: ['native'] });
    expect(full.checks.find((c) => c.backend === 'wasm')?.error).toMatch(/nchwc/);
  });

  it('checks a model with symbolic inputs once their sizes are bound, and names the ones that are not', async () => {
    const cls = await loadModel(OCR_MODELS.cls);
    const bindings = { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 48, 'p2o.DynamicDimension.2': 192 };
    const result = await convertToOrtFormat(cls, passContext('cuda', workDir), { ...TOLERANCE, bindings });
    expect(result).toMatchObject({ level: 'basic', backends: ['native', 'wasm'] });
    await expect(convertToOrtFormat(cls, passContext('x86_64', workDir), TOLERANCE)).rejects.toSatisfy(
      (e) => isOutpostError(e, 'SYMBOLIC_DIM_UNBOUND') && e.message.includes('p2o.DynamicDimension.0'),
    );
  });

  it('never saves a QDQ model below "extended" (ORT would leave it unfused, in float), and checks at that level', async () => {
    const model = cnn();
    const ranges = await collectRanges(
      model,
      [{ image: { data: randomFloats(3 * 64 * 64, 3), dims: [1, 3, 64, 64] } }],
      {
        method: 'minmax',
      },
    );
    const context = passContext('host', workDir);
    const qdq = await quantizeStatic(cloneModel(model), context, { ranges, format: context.target.quantization });
    expect(hasQdq(qdq)).toBe(true);
    const result = await convertToOrtFormat(qdq, context, TOLERANCE);
    expect(['extended', 'all']).toContain(result.level);
    expect(result.stepped.map((s) => s.level)).not.toContain('basic');
    // Against the .onnx run at the level it was saved at, the .ort is the same computation.
    expect(result.checks.find((c) => c.backend === 'native')?.maxAbsErr).toBeLessThanOrEqual(1e-6);
    await expect(convertToOrtFormat(qdq, passContext('cuda', workDir), TOLERANCE)).rejects.toSatisfy(
      (e) => isOutpostError(e, 'MODEL_UNSUPPORTED') && /QDQ model.*would not fuse QDQ/.test(e.message),
    );
  });

  it('refuses an fp16 model: this CPU’s Casts would be baked into the file', async () => {
    const context = passContext('cuda', workDir);
    const half = await convertToFloat16(cnn(), context, undefined);
    await expect(convertToOrtFormat(half, context)).rejects.toSatisfy(
      (e) => isOutpostError(e, 'MODEL_UNSUPPORTED') && /ship the fp16 variant for cuda:sm_87 as \.onnx/.test(e.message),
    );
  });
});
