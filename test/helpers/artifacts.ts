import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { saveModel } from '../../compiler/onnx/index.js';
import { generateSigningKeys, writeArtifact, type ArtifactFileSource } from '../../runtime/artifact/index.js';
import type { BackendName } from '../../runtime/artifact/manifest.js';
import { encodeNpy } from '../../runtime/tensor/npy.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';
import { buildCnn } from '../../models/samples.js';
import { fp32Variant, manifestDraft } from './manifest-draft.js';

export interface SampleArtifact {
  readonly dir: string;
  readonly modelPath: string;
  readonly keys: ReturnType<typeof generateSigningKeys>;
  readonly input: Float32Array;
  readonly expected: Float32Array;
}

/**
 * A real artifact around the sample CNN: two variants (the same fp32 model under two ids, so variant selection
 * can be observed), labels, a softmax/top-k pipeline, and one test vector recorded from a raw onnxruntime-node run.
 */
export async function sampleCnnArtifact(
  root: string,
  options: {
    signed?: boolean;
    variantBackends?: readonly [BackendName[], BackendName[]];
    /** The manifest's target (default any/any): fleet tests deploy one version for several targets. */
    target?: { profile: string; arch: 'x86_64' | 'arm64' | 'any' };
    version?: string;
    /** Extra bytes of labels, to make downloads take a while (fleet tests). */
    padBytes?: number;
    keys?: ReturnType<typeof generateSigningKeys>;
  } = {},
): Promise<SampleArtifact> {
  const modelPath = join(root, 'cnn.onnx');
  await saveModel(buildCnn().proto, modelPath);
  const random = seededRandom(3);
  const input = Float32Array.from({ length: 3 * 64 * 64 }, () => random());
  const session = await ort.InferenceSession.create(modelPath);
  const out = await session.run({ image: new ort.Tensor('float32', input, [1, 3, 64, 64]) });
  const expected = out.logits?.data as Float32Array;
  await session.release();
  const keys = options.keys ?? generateSigningKeys();
  const [first, second] = options.variantBackends ?? [
    ['native', 'wasm'],
    ['native', 'wasm'],
  ];
  const manifest = manifestDraft({
    name: 'sample-cnn',
    version: options.version ?? '1.0.0',
    ...(options.target === undefined ? {} : { target: options.target }),
    inputs: [{ name: 'image', dtype: 'float32', shape: ['batch', 3, 64, 64] }],
    outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
    variants: [
      fp32Variant('variants/cnn.fp32.onnx', { backends: first }),
      fp32Variant('variants/cnn.copy.onnx', { id: 'fp32-copy', backends: second, rank: 2 }),
    ],
    pipeline: { postprocess: [{ op: 'softmax' }, { op: 'topk', k: 3 }], labels: 'labels.txt' },
    testVectors: {
      tolerance: { atol: 1e-4, rtol: 1e-3 },
      cases: [
        {
          id: 'case0',
          inputs: { image: 'test-vectors/case0/image.npy' },
          outputs: { logits: 'test-vectors/case0/logits.npy' },
        },
      ],
    },
  });
  const files: ArtifactFileSource[] = [
    { path: 'variants/cnn.fp32.onnx', from: modelPath },
    { path: 'variants/cnn.copy.onnx', from: modelPath },
    {
      path: 'labels.txt',
      from: Buffer.from(
        Array.from({ length: 10 }, (_, i) => `class-${i}`).join('\n') + '\n' + padding(options.padBytes ?? 0),
      ),
    },
    { path: 'test-vectors/case0/image.npy', from: encodeNpy({ dtype: 'float32', shape: [1, 3, 64, 64], data: input }) },
    { path: 'test-vectors/case0/logits.npy', from: encodeNpy({ dtype: 'float32', shape: [1, 10], data: expected }) },
  ];
  const dir = join(root, 'artifact');
  await writeArtifact(dir, { manifest, files, ...(options.signed === true ? { signingKey: keys.privateKeyPem } : {}) });
  return { dir, modelPath, keys, input, expected };
}

/** Incompressible text (base64 of a seeded byte stream), so a padded artifact stays big after gzip (≈ 3/4 of it). */
function padding(bytes: number): string {
  if (bytes <= 0) return '';
  const random = seededRandom(11);
  const raw = Buffer.alloc(Math.ceil((bytes * 3) / 4));
  for (let i = 0; i < raw.length; i += 4)
    raw.writeUInt32LE(Math.floor(random() * 0xffffffff), Math.min(i, raw.length - 4));
  return `${raw.toString('base64').slice(0, bytes)}\n`;
}
