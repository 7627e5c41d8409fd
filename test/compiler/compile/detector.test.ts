import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../../compiler/compile.js';
import { writeTextPages } from '../../../bench/compiler/text-pages.js';
import { verifyArtifact } from '../../../runtime/artifact/index.js';
import { ROOT } from '../../helpers/models.js';
import { tmpDir } from '../../helpers/tmp.js';

const DETECTOR = join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_det_infer.onnx');
const COMPILE_TIMEOUT_MS = 300_000; // ms: calibration, mixed precision and the ORT-format checks at 640²

/**
 * The compile a new user tried first (issue: "an int8 compile of a real detector fails outright"): PaddleOCR's
 * detector at 640×640, calibrated on rendered text pages, for this host with ORT format on.
 */
describe('compile: PaddleOCR det v4, int8, for this host, ORT format on', () => {
  it(
    'ships the int8 variant as .ort, graded against fp32 within the budget (cosine ≥ 0.99)',
    async () => {
      const dir = await tmpDir();
      const pages = await writeTextPages(join(dir, 'pages'), 5, 640);
      const out = join(dir, 'det');
      const report = await compile({
        model: DETECTOR,
        target: 'host',
        precision: 'int8',
        inputShapes: { x: [1, 3, 640, 640] },
        calibration: pages,
        output: out,
      });
      const [variant] = report.variants;
      expect(['int8', 'mixed']).toContain(variant?.precision);
      expect(variant?.format, variant?.format_reason).toBe('ort');
      expect(variant?.format_reason).toMatch(/graded against the fp32 original/);
      expect(variant?.accuracy?.cosine).toBeGreaterThanOrEqual(0.99);
      expect(report.calibration).toMatchObject({ synthetic: false, samples: 4, evaluation_samples: 1 });
      const { manifest } = await verifyArtifact(out);
      expect(manifest.variants[0]?.file).toMatch(/\.ort$/);
    },
    COMPILE_TIMEOUT_MS,
  );
});
