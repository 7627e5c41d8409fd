import { loadSharp } from './sharp.js';
import { OutpostError, messageOf } from '../errors.js';
import { imagePreprocessSchema, type ImagePreprocess, type TensorSpec } from '../artifact/manifest.js';
import type { TensorLike } from '../tensor/tensor.js';

/** File extensions treated as images by `run --input` and `compile --calibration`. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
]);

/**
 * Largest image decoded, in pixels (width × height): a 48 MP camera frame fits; a decompression bomb (a small file
 * declaring a huge image) is refused from its header before any pixel is decoded. sharp's own default is 268 MP,
 * ~800 MB of RGB — more than a Pi should spend on one request.
 */
export const MAX_IMAGE_PIXELS = 50_000_000; // pixels

/** How each resize mode maps onto sharp's `fit` (https://sharp.pixelplumbing.com/api-resize). */
const FIT = Object.freeze({ stretch: 'fill', letterbox: 'contain', 'center-crop': 'cover' } as const);

/**
 * Image bytes (JPEG, PNG, WebP, …) → one input tensor, per the artifact's pre-processing spec: decode, resize,
 * colour order, ((pixel × scale) − mean) / std per channel, NCHW or NHWC, batch of one.
 */
export async function imageToTensor(bytes: Uint8Array, spec: ImagePreprocess): Promise<TensorLike> {
  const channels = spec.colorOrder === 'GRAY' ? 1 : 3;
  const sharp = await loadSharp();
  let pixels: Buffer;
  try {
    let pipeline = sharp(bytes, { failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS }).rotate();
    pipeline = channels === 1 ? pipeline.grayscale() : pipeline.removeAlpha().toColourspace('srgb');
    pixels = await pipeline
      .resize(spec.width, spec.height, { fit: FIT[spec.resize], position: 'centre', background: { r: 0, g: 0, b: 0 } })
      .raw()
      .toBuffer();
  } catch (error) {
    throw new OutpostError('INPUT_INVALID', `not a decodable image (${bytes.byteLength} bytes): ${messageOf(error)}`, {
      cause: error,
    });
  }
  const { width, height } = spec;
  const plane = width * height;
  const nchw = spec.layout === 'NCHW';
  const dims = nchw ? [1, channels, height, width] : [1, height, width, channels];
  // sharp yields interleaved RGB (HWC); BGR models read channel 2 first.
  const source = (c: number) => (spec.colorOrder === 'BGR' ? 2 - c : c);
  if (spec.dtype === 'uint8') {
    const data = new Uint8Array(plane * channels);
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < channels; c++)
        data[nchw ? c * plane + p : p * channels + c] = pixels[p * channels + source(c)] ?? 0;
    }
    return { data, dims, type: 'uint8' };
  }
  const data = new Float32Array(plane * channels);
  for (let c = 0; c < channels; c++) {
    const mean = spec.mean[c] ?? spec.mean[0] ?? 0;
    const std = spec.std[c] ?? spec.std[0] ?? 1;
    const from = source(c);
    for (let p = 0; p < plane; p++) {
      data[nchw ? c * plane + p : p * channels + c] = ((pixels[p * channels + from] ?? 0) * spec.scale - mean) / std;
    }
  }
  return { data, dims, type: 'float32' };
}

/**
 * A pre-processing spec guessed from an image-shaped input ([1,3,H,W] or [1,H,W,3]), for plain models that carry
 * none: RGB scaled to [0, 1]. Undefined when the input does not look like an image.
 */
export function guessImagePreprocess(input: TensorSpec): ImagePreprocess | undefined {
  const [n, a, b, c] = input.shape;
  if (input.shape.length !== 4 || (typeof n === 'number' && n !== 1)) return undefined;
  if (input.dtype !== 'float32' && input.dtype !== 'uint8') return undefined;
  const layout = a === 3 || a === 1 ? 'NCHW' : c === 3 || c === 1 ? 'NHWC' : undefined;
  const [height, width] = layout === 'NCHW' ? [b, c] : [a, b];
  if (layout === undefined || typeof height !== 'number' || typeof width !== 'number') return undefined;
  const gray = (layout === 'NCHW' ? a : c) === 1;
  return imagePreprocessSchema.parse({
    kind: 'image',
    input: input.name,
    width,
    height,
    layout,
    colorOrder: gray ? 'GRAY' : 'RGB',
    dtype: input.dtype,
    scale: input.dtype === 'uint8' ? 1 : 1 / 255,
  });
}
