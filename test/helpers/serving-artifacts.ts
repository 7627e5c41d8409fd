import { join } from 'node:path';
import sharp from 'sharp';
import { GraphBuilder, saveModel } from '../../compiler/onnx/index.js';
import { writeArtifact, type ManifestDraft } from '../../runtime/artifact/index.js';
import { loadModel } from '../../runtime/model/load.js';
import type { Model } from '../../runtime/model/model.js';
import { seededRandom } from '../../runtime/tensor/tensor.js';
import { buildCnn, buildMlp, OPSET } from '../../models/samples.js';
import { fp32Variant, manifestDraft } from './manifest-draft.js';

/** Ten labels, one per class of the sample classifiers. */
export const LABELS = Object.freeze(Array.from({ length: 10 }, (_, i) => `class-${i}`));
/** ImageNet normalisation, as a real image classifier's artifact would declare it. */
const IMAGE_PREPROCESS: NonNullable<ManifestDraft['pipeline']>['preprocess'] = {
  kind: 'image',
  input: 'image',
  width: 64,
  height: 64,
  resize: 'stretch',
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};
export const TOP_K = 3;

/**
 * `probe`: x FP32 [batch, 3, 224, 224] (an ImageNet-sized input) → `mean` FP32 [batch, 3] (per-channel mean),
 * `scaled` FP32 [batch, 3, 224, 224] (x × 2: a large output), `top` INT64 [batch] (argmax of the means).
 */
async function probeModel(dir: string): Promise<string> {
  const g = new GraphBuilder('probe');
  const x = g.input('x', 'float32', ['batch', 3, 224, 224]);
  const mean = g.nodeOutputs('ReduceMean', [x], ['mean'], { axes: [2, 3], keepdims: 0 })[0] ?? '';
  const two = g.initializer('two', Float32Array.of(2), []);
  g.output(g.nodeOutputs('Mul', [x, two], ['scaled'])[0] ?? '', 'float32', ['batch', 3, 224, 224]);
  g.output(mean, 'float32', ['batch', 3]);
  g.output(g.nodeOutputs('ArgMax', [mean], ['top'], { axis: 1, keepdims: 0 })[0] ?? '', 'int64', ['batch']);
  const path = join(dir, 'probe.onnx');
  await saveModel(g.build({ opsets: { '': OPSET } }), path);
  return path;
}

/** `echo`: text BYTES [n] → `same` BYTES [n] (Identity): strings through ONNX Runtime and back. */
async function echoModel(dir: string): Promise<string> {
  const g = new GraphBuilder('echo');
  const text = g.input('text', 'string', ['n']);
  g.output(g.nodeOutputs('Identity', [text], ['same'])[0] ?? '', 'string', ['n']);
  const path = join(dir, 'echo.onnx');
  await saveModel(g.build({ opsets: { '': OPSET } }), path);
  return path;
}

const labelsFile = () => ({ path: 'labels.txt', from: Buffer.from(`${LABELS.join('\n')}\n`) });

/** The sample CNN as an artifact with an image pipeline: JPEG/PNG in, softmax + top-3 labels out. */
async function imageArtifact(dir: string, version: string): Promise<string> {
  const model = join(dir, `cnn-${version}.onnx`);
  await saveModel(buildCnn().proto, model);
  const manifest = manifestDraft({
    name: 'classifier',
    version,
    inputs: [{ name: 'image', dtype: 'float32', shape: ['batch', 3, 64, 64] }],
    outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
    variants: [fp32Variant('variants/cnn.onnx')],
    pipeline: {
      preprocess: IMAGE_PREPROCESS,
      postprocess: [{ op: 'softmax' }, { op: 'topk', k: TOP_K }],
      labels: 'labels.txt',
    },
  });
  const out = join(dir, `classifier-${version}`);
  await writeArtifact(out, { manifest, files: [{ path: 'variants/cnn.onnx', from: model }, labelsFile()] });
  return out;
}

/** The sample MLP (x [batch, 16] → logits [batch, 10]) with softmax, argmax and top-3 labels: small, for fuzzing. */
async function mlpArtifact(dir: string): Promise<string> {
  const model = join(dir, 'mlp.onnx');
  await saveModel(buildMlp().proto, model);
  const manifest = manifestDraft({
    name: 'mlp',
    inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 16] }],
    outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', 10] }],
    pipeline: {
      postprocess: [{ op: 'softmax' }, { op: 'argmax' }, { op: 'topk', k: TOP_K }],
      labels: 'labels.txt',
    },
  });
  const out = join(dir, 'mlp-artifact');
  await writeArtifact(out, { manifest, files: [{ path: 'variants/mlp.onnx', from: model }, labelsFile()] });
  return out;
}

/** Outputs of `mosaic`, and the repeats that make each one 4× the image. */
export const MOSAIC_OUTPUTS = 12;
const MOSAIC_REPEATS = [1, 1, 2, 2];

/**
 * `mosaic`: an image model (no post-processing) with MOSAIC_OUTPUTS large outputs, `tile<i>` FP32 [1, 3, 128, 128] =
 * the pre-processed image × (i + 1), tiled 2×2: every image answer it gives by default is all of them, ~10 MB of JSON.
 */
async function mosaicArtifact(dir: string): Promise<string> {
  const g = new GraphBuilder('mosaic');
  const image = g.input('image', 'float32', [1, 3, 64, 64]);
  const repeats = g.initializer('repeats', BigInt64Array.from(MOSAIC_REPEATS, BigInt), [4]);
  const outputs: ManifestDraft['outputs'] = [];
  for (let i = 0; i < MOSAIC_OUTPUTS; i++) {
    const scale = g.initializer(`scale${i}`, Float32Array.of(i + 1), []);
    const name = `tile${i}`;
    g.output(
      g.nodeOutputs('Tile', [g.node('Mul', [image, scale]), repeats], [name])[0] ?? '',
      'float32',
      [1, 3, 128, 128],
    );
    outputs.push({ name, dtype: 'float32', shape: [1, 3, 128, 128] });
  }
  const model = join(dir, 'mosaic.onnx');
  await saveModel(g.build({ opsets: { '': OPSET } }), model);
  const manifest = manifestDraft({
    name: 'mosaic',
    inputs: [{ name: 'image', dtype: 'float32', shape: [1, 3, 64, 64] }],
    outputs,
    pipeline: { preprocess: IMAGE_PREPROCESS },
  });
  const out = join(dir, 'mosaic-artifact');
  await writeArtifact(out, { manifest, files: [{ path: 'variants/mosaic.onnx', from: model }] });
  return out;
}

export type FixtureName = 'probe' | 'echo' | 'mlp' | 'classifier' | 'classifier2' | 'mosaic';

const BUILDERS: Readonly<Record<FixtureName, (dir: string) => Promise<string>>> = Object.freeze({
  probe: probeModel,
  echo: echoModel,
  mlp: mlpArtifact,
  classifier: (dir) => imageArtifact(dir, '1.0.0'),
  classifier2: (dir) => imageArtifact(dir, '2.0.0'),
  mosaic: mosaicArtifact,
});

/** Builds the named fixture in `dir`: an artifact directory, or a plain .onnx for `probe` and `echo`. */
export function buildFixture(dir: string, name: FixtureName): Promise<string> {
  return BUILDERS[name](dir);
}

/** Builds and loads the named fixtures (no warm-up: tests are the first calls). */
export async function loadFixtures<N extends FixtureName>(dir: string, names: readonly N[]): Promise<Record<N, Model>> {
  const loaded = await Promise.all(
    names.map(async (name) => [name, await loadModel(await BUILDERS[name](dir), { warmup: 0 })] as const),
  );
  return Object.fromEntries(loaded) as Record<N, Model>;
}

/** A test picture (smooth gradients plus seeded noise) as JPEG or PNG, made with sharp. */
export async function testImage(format: 'jpeg' | 'png', seed = 1, width = 96, height = 80): Promise<Buffer> {
  const random = seededRandom(seed);
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      pixels[p] = (x * 255) / width;
      pixels[p + 1] = (y * 255) / height;
      pixels[p + 2] = random() * 255;
    }
  }
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  return format === 'jpeg' ? image.jpeg({ quality: 90 }).toBuffer() : image.png().toBuffer();
}
