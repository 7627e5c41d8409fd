import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { saveModel } from '../compiler/onnx/index.js';
import { packArtifact, writeArtifact, type ManifestDraft } from '../runtime/artifact/index.js';
import { buildMlp } from '../models/samples.js';

/** Random bytes as base64 gzip to about 3/4 of their length: padding that keeps an archive the size asked. */
const BASE64_GZIP_RATIO = 0.76;

/**
 * An artifact for the rollout bench whose .tar.gz is about `bytes` long: the sample MLP (one fp32 variant, any
 * target, so every simulated device fits it) and incompressible padding in labels.txt. Returns the directory and the
 * packed size (what each device downloads).
 */
export async function smallArtifact(root: string, bytes: number): Promise<{ dir: string; bytes: number }> {
  const modelPath = join(root, 'mlp.onnx');
  await saveModel(buildMlp().proto, modelPath);
  const build = async (pad: number) => {
    const dir = join(root, `artifact-${pad}`);
    const manifest: ManifestDraft = {
      name: 'bench-mlp',
      version: '1.0.0',
      target: { profile: 'any', arch: 'any' },
      inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 16] }],
      outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
      variants: [
        {
          id: 'fp32',
          file: 'variants/mlp.onnx',
          precision: 'fp32',
          format: 'onnx',
          backends: ['native', 'wasm'],
          rank: 1,
        },
      ],
      pipeline: { labels: 'labels.txt' },
      producer: { outpost: 'bench' },
    };
    const labels = `${Array.from({ length: 10 }, (_, i) => `class-${i}`).join('\n')}\n${randomBytes(
      Math.ceil(pad * 0.75),
    )
      .toString('base64')
      .slice(0, pad)}\n`;
    await writeArtifact(dir, {
      manifest,
      files: [
        { path: 'variants/mlp.onnx', from: modelPath },
        { path: 'labels.txt', from: Buffer.from(labels) },
      ],
    });
    const packed = await packArtifact(dir, join(root, `artifact-${pad}.tar.gz`));
    return { dir, bytes: (await stat(packed.path)).size };
  };
  const bare = await build(0);
  if (bare.bytes >= bytes) return bare;
  await rm(bare.dir, { recursive: true, force: true });
  return build(Math.round((bytes - bare.bytes) / BASE64_GZIP_RATIO));
}
