import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GraphBuilder,
  asOnnxModel,
  cloneModel,
  loadModel,
  mainGraph,
  opHistogram,
  saveModel,
  type OnnxModel,
} from '../../../compiler/onnx/index.js';
import { convertToFloat16 } from '../../../compiler/passes/fp16.js';
import { optimizationLevelFor, optimize, optimizeModel } from '../../../compiler/passes/optimize.js';
import { interfaceNames } from '../../../compiler/passes/ort-offline.js';
import { WasmBackend } from '../../../runtime/backends/wasm.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { allClose } from '../../../runtime/tensor/tensor.js';
import { buildCnn } from '../../../models/samples.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { OCR_MODELS, floatFeed, floats, passContext, run } from '../../helpers/pass-runs.js';

// The optimised graph computes what the original does; fusions reorder float arithmetic, hence a tolerance.
const ATOL = 1e-5;
const RTOL = 1e-4;

let workDir: string;
let dispose: () => Promise<void>;
beforeAll(async () => ({ dir: workDir, dispose } = await suiteTmpDir('outpost-optimize-')));
afterAll(() => dispose());

const cnn = (): OnnxModel => asOnnxModel(buildCnn().proto);
const ops = (model: OnnxModel): string[] => [...opHistogram(model.proto).keys()];

async function expectSameOutputs(original: OnnxModel, optimized: OnnxModel, feeds: Parameters<typeof run>[1]) {
  const [a, b] = [await run(original, feeds, 'disabled'), await run(optimized, feeds, 'disabled')];
  for (const name of Object.keys(a)) {
    const cmp = allClose(floats(b, name), floats(a, name), ATOL, RTOL);
    expect(cmp.ok, `${name}: max |Δ| ${cmp.maxAbsErr}`).toBe(true);
  }
}

/** x → Q/DQ (int8) → Conv with int8 DQ weights → Q/DQ: what the quantiser emits for ARM (S8S8). */
function qdqConv(): OnnxModel {
  const g = new GraphBuilder('qdq');
  const x = g.input('x', 'float32', [1, 4, 8, 8]);
  const scale = g.initializer('scale', Float32Array.of(0.05), []);
  const zero = g.initializer('zero', Int8Array.of(0), [], 'int8');
  const w = g.initializer(
    'w',
    Int8Array.from({ length: 8 * 4 * 9 }, (_, i) => (i % 11) - 5),
    [8, 4, 3, 3],
    'int8',
  );
  const wScale = g.initializer('w_scale', Float32Array.of(0.02), []);
  const xq = g.node('DequantizeLinear', [g.node('QuantizeLinear', [x, scale, zero]), scale, zero]);
  const conv = g.node('Conv', [xq, g.node('DequantizeLinear', [w, wScale, zero])], {
    kernel_shape: [3, 3],
    pads: [1, 1, 1, 1],
  });
  g.output(
    g.node('DequantizeLinear', [g.node('QuantizeLinear', [conv, scale, zero]), scale, zero]),
    'float32',
    [1, 8, 8, 8],
  );
  return asOnnxModel(g.build({ opsets: { '': 17 } }));
}

describe('optimizationLevelFor', () => {
  it('is extended when cross-compiling for a CPU, basic for CUDA, all only on the host', () => {
    expect(optimizationLevelFor(passContext('x86_64:avx2', workDir)).level).toBe('extended');
    expect(optimizationLevelFor(passContext('arm64:cortex-a72', workDir)).level).toBe('extended');
    expect(optimizationLevelFor(passContext('cuda:sm_87', workDir)).level).toBe('basic');
    expect(optimizationLevelFor(passContext('host', workDir)).level).toBe('all');
  });
});

describe('optimize', () => {
  it('fuses for a CPU target, keeps the interface and the answers, and the result loads in WASM', async () => {
    const original = cnn();
    const context = passContext('arm64:cortex-a76', workDir);
    const result = await optimizeModel(cloneModel(original), context);
    expect(result).toMatchObject({ level: 'extended', requested: 'extended', backends: ['native', 'wasm'] });
    expect(ops(result.model)).toContain('com.microsoft:FusedConv');
    expect(result.nodes.after).toBeLessThan(result.nodes.before);
    expect(interfaceNames(result.model)).toEqual(interfaceNames(original));
    // ORT's writer imports every domain it knows; only the used ones stay.
    expect(result.model.proto.opsetImport.map((o) => o.domain).sort()).toEqual(['', 'com.microsoft']);
    await expectSameOutputs(original, result.model, { image: floatFeed([2, 3, 64, 64], 1) });

    const path = `${workDir}/cnn-extended.onnx`;
    await saveModel(result.model, path);
    const wasm = new WasmBackend({ threads: 1 });
    await wasm.init();
    await (await wasm.createSession(path, {})).release();
  });

  it('keeps only standard ONNX ops for CUDA (TensorRT must take every node)', async () => {
    const original = await loadModel(OCR_MODELS.cls);
    const result = await optimizeModel(cloneModel(original), passContext('cuda', workDir));
    expect(result.level).toBe('basic');
    expect(ops(result.model).filter((op) => op.includes(':'))).toEqual([]);
    expect(ops(result.model)).not.toContain('BatchNormalization'); // folded into Conv
    await expectSameOutputs(original, result.model, { x: floatFeed([2, 3, 48, 192], 2) });
  });

  it('on the host, steps down from the NCHWc layout WASM cannot load, unless WASM is not required', async () => {
    const original = cnn();
    const context = passContext('host', workDir);
    const stepped = await optimizeModel(cloneModel(original), context);
    expect(stepped).toMatchObject({ requested: 'all', level: 'extended', backends: ['native', 'wasm'] });
    expect(context.report.warnings.join('\n')).toMatch(/"all" graph does not load in onnxruntime-web .*nchwc/);

    const nativeOnly = await optimizeModel(cloneModel(original), passContext('host', workDir), { wasm: false });
    expect(nativeOnly).toMatchObject({ level: 'all', backends: ['native'] });
    expect(ops(nativeOnly.model)).toContain('com.microsoft.nchwc:Conv');
    await expectSameOutputs(original, nativeOnly.model, { image: floatFeed([1, 3, 64, 64], 3) });
  });

  it('keeps int8 QDQ as int8 for ARM and lets x86 convert it to uint8, as ORT on each would', async () => {
    const zeroPointTypes = (model: OnnxModel): number[] => {
      const graph = mainGraph(model.proto);
      const qlinear = graph.node.find((n) => n.opType === 'QLinearConv');
      const zp = graph.initializer.find((t) => t.name === qlinear?.input[2]);
      return [zp?.dataType ?? -1];
    };
    const arm = await optimize(qdqConv(), passContext('arm64', workDir), undefined);
    const x86 = await optimize(qdqConv(), passContext('x86_64', workDir), undefined);
    expect(zeroPointTypes(arm)).toEqual([3]); // INT8
    expect(zeroPointTypes(x86)).toEqual([2]); // UINT8
  });

  it('refuses an fp16 model for a cross-compiled target (ORT would bake this CPU’s Casts in)', async () => {
    const context = passContext('cuda', workDir);
    const half = await convertToFloat16(cnn(), context, undefined);
    await expect(optimize(half, context, undefined)).rejects.toSatisfy(
      (e) =>
        isOutpostError(e, 'MODEL_UNSUPPORTED') && /computes in float16.*optimise before converting/.test(e.message),
    );
  });
});
