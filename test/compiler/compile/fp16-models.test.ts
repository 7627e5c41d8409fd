import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../../compiler/compile.js';
import { asOnnxModel, loadModel, saveModel } from '../../../compiler/onnx/index.js';
import { convertToFloat16 } from '../../../compiler/passes/fp16.js';
import { fixInputShapes } from '../../../compiler/passes/fix-input-shapes.js';
import { buildSegmentationFp16 } from '../../../models/segmentation.js';
import { verifyArtifact } from '../../../runtime/artifact/index.js';
import { loadModel as loadArtifact } from '../../../runtime/model/load.js';
import { readTestVectors } from '../../../runtime/model/test-vectors.js';
import { allClose } from '../../../runtime/tensor/tensor.js';
import { tmpDir } from '../../helpers/tmp.js';
import { OCR_MODELS, passContext } from '../../helpers/pass-runs.js';

/** Every variant passes the artifact's own test vectors on each backend it lists (float16 outputs as numbers). */
async function selfTest(dir: string): Promise<void> {
  const { manifest } = await verifyArtifact(dir);
  for (const variant of manifest.variants) {
    for (const backend of variant.backends) {
      const model = await loadArtifact(dir, { variant: variant.id, backend, warmup: 0 });
      try {
        const tolerance = variant.tolerance ?? { atol: 0, rtol: 0 };
        for (const vector of await readTestVectors(model)) {
          const out = await model.infer(vector.inputs);
          for (const [name, e] of Object.entries(vector.expected)) {
            const check = allClose(out[name]?.data ?? [], e.data, tolerance.atol, tolerance.rtol, e.type);
            expect(check.ok, `${variant.id} on ${backend}, ${name}`).toBe(true);
          }
        }
      } finally {
        await model.release();
      }
    }
  }
}

describe('compile: models exported in float16', () => {
  it.for(['arm64', 'host'])(
    'compiles an fp16-exported segmentation net for %s: fp32 and int8 variants, float16 interface kept',
    async (target) => {
      const dir = await tmpDir();
      const path = join(dir, 'seg-fp16.onnx');
      await saveModel(buildSegmentationFp16({ size: 64, width: 8 }), path);
      const out = join(dir, 'artifact');
      const report = await compile({ model: path, target, output: out });
      expect(report.variants.map((v) => v.precision).sort()).toEqual(['fp32', 'int8']);
      for (const v of report.variants) expect(v.accuracy?.cosine, v.id).toBeGreaterThanOrEqual(0.99);
      expect(report.warnings.join('\n')).toMatch(/computes in float16: widened to float32/);
      const { manifest } = await verifyArtifact(out);
      expect(manifest.inputs.map((i) => i.dtype)).toEqual(['float16']);
      expect(manifest.outputs.map((o) => o.dtype)).toEqual(['float16', 'float16']);
      const int8 = report.variants.find((v) => v.precision === 'int8');
      const fp32 = report.variants.find((v) => v.precision === 'fp32');
      expect(int8?.bytes ?? Infinity).toBeLessThan((fp32?.bytes ?? 0) * 0.5);
      await selfTest(out);
    },
  );

  it('compiles a real CNN turned fp16 (PaddleOCR cls) for arm64 as from its fp32 original', async () => {
    const dir = await tmpDir();
    const context = passContext('cuda:sm_87', dir);
    const fixed = await fixInputShapes(await loadModel(OCR_MODELS.cls), context, { shapes: { x: [1, 3, 48, 192] } });
    const path = join(dir, 'cls-fp16.onnx');
    await saveModel(await convertToFloat16(asOnnxModel(fixed.proto), context, undefined), path);
    const report = await compile({ model: path, target: 'arm64', output: join(dir, 'cls') });
    expect(report.variants.map((v) => v.id)).toEqual(['int8', 'fp32']);
    expect(report.variants[0]?.accuracy?.cosine).toBeGreaterThanOrEqual(0.99);
    await selfTest(join(dir, 'cls'));
  });
});
