import * as z from 'zod';
import { OutpostError, messageOf } from '../../errors.js';
import type { TensorSpec } from '../../artifact/manifest.js';
import { MAX_IMAGE_PIXELS } from '../image.js';
import { loadSharp } from '../sharp.js';
import { tensor, type TransformDef } from './types.js';

/**
 * Image steps. `image-decode`: encoded bytes (JPEG, PNG, WebP, …, uint8 [bytes]) → RGB pixels uint8 [H, W, 3], EXIF
 * orientation applied, refused from the header beyond MAX_IMAGE_PIXELS (the same bound as the per-model
 * pre-processing); a corrupt image is INPUT_INVALID. `image-tensor`: pixels → a model's float input
 * [1, 3, h, w] (or NHWC), either at a fixed size or, for detectors that take any size (DBNet), scaled so the longer
 * side is at most `limitSide` and both sides are multiples of `multiple` (PaddleOCR's `DetResizeForTest` with
 * `limit_type: max`; PP-OCRv4's defaults, 960 and 32), then ((pixel × scale) − mean) / std per channel.
 */
export const imageDecodeParams = z.object({}).strict();

export const imageTensorParams = z
  .object({
    width: z.number().int().min(1).max(8192).optional(),
    height: z.number().int().min(1).max(8192).optional(),
    limitSide: z.number().int().min(32).max(8192).default(960),
    multiple: z.number().int().min(1).max(256).default(32),
    colorOrder: z.enum(['RGB', 'BGR']).default('RGB'),
    layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
    scale: z.number().default(1 / 255),
    mean: z.array(z.number()).min(1).max(3).default([0, 0, 0]),
    std: z
      .array(z.number().refine((v) => v !== 0, 'a non-zero std'))
      .min(1)
      .max(3)
      .default([1, 1, 1]),
  })
  .strict()
  .refine((p) => (p.width === undefined) === (p.height === undefined), {
    message: 'give both width and height, or neither (then limitSide applies)',
    path: ['width'],
  });
export type ImageTensorParams = z.infer<typeof imageTensorParams>;

/** The size `image-tensor` resizes a `width` × `height` image to. */
export function targetSize(
  width: number,
  height: number,
  params: ImageTensorParams,
): { width: number; height: number } {
  if (params.width !== undefined && params.height !== undefined) return { width: params.width, height: params.height };
  const ratio = Math.max(width, height) > params.limitSide ? params.limitSide / Math.max(width, height) : 1;
  const round = (v: number) => Math.max(params.multiple, Math.round((v * ratio) / params.multiple) * params.multiple);
  return { width: round(width), height: round(height) };
}

export async function decodeImage(bytes: Uint8Array): Promise<{ data: Uint8Array; width: number; height: number }> {
  const sharp = await loadSharp();
  try {
    const { data, info } = await sharp(bytes, { failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS })
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      width: info.width,
      height: info.height,
    };
  } catch (error) {
    throw new OutpostError('INPUT_INVALID', `not a decodable image (${bytes.byteLength} bytes): ${messageOf(error)}`, {
      cause: error,
    });
  }
}

export const imageDecodeTransform: TransformDef<z.infer<typeof imageDecodeParams>> = {
  op: 'image-decode',
  summary: 'encoded image bytes [bytes] → RGB pixels [H, W, 3] (uint8)',
  params: imageDecodeParams,
  inputs: [{ name: 'bytes', dtypes: ['uint8'], rank: 1 }],
  outputs: (): TensorSpec[] => [{ name: 'image', dtype: 'uint8', shape: ['height', 'width', 3] }],
  prepare: () => async (inputs) => {
    const bytes = inputs.bytes;
    if (bytes === undefined) throw new OutpostError('INPUT_MISSING', 'image-decode: no bytes');
    const { data, width, height } = await decodeImage(bytes.data as Uint8Array);
    return { image: tensor('uint8', data, [height, width, 3]) };
  },
};

export const imageTensorTransform: TransformDef<ImageTensorParams> = {
  op: 'image-tensor',
  summary: 'RGB pixels [H, W, 3] → normalised float32 [1, 3, h, w] (or NHWC), fixed size or limited side',
  params: imageTensorParams,
  inputs: [{ name: 'image', dtypes: ['uint8'], rank: 3 }],
  outputs: (params): TensorSpec[] => {
    const [h, w] = params.width === undefined ? ['height', 'width'] : [params.height ?? 'height', params.width];
    return [{ name: 'tensor', dtype: 'float32', shape: params.layout === 'NCHW' ? [1, 3, h, w] : [1, h, w, 3] }];
  },
  prepare: (params) => async (inputs) => {
    const image = inputs.image;
    if (image === undefined) throw new OutpostError('INPUT_MISSING', 'image-tensor: no image');
    const [height = 0, width = 0] = image.dims;
    const size = targetSize(width, height, params);
    const pixels =
      size.width === width && size.height === height
        ? (image.data as Uint8Array)
        : await (
            await loadSharp()
          )(image.data as Uint8Array, { raw: { width, height, channels: 3 } })
            .resize(size.width, size.height, { fit: 'fill', kernel: 'linear' })
            .raw()
            .toBuffer();
    const plane = size.width * size.height;
    const data = new Float32Array(plane * 3);
    const nchw = params.layout === 'NCHW';
    for (let c = 0; c < 3; c++) {
      const mean = params.mean[c] ?? params.mean[0] ?? 0;
      const std = params.std[c] ?? params.std[0] ?? 1;
      const from = params.colorOrder === 'BGR' ? 2 - c : c;
      for (let p = 0; p < plane; p++)
        data[nchw ? c * plane + p : p * 3 + c] = ((pixels[p * 3 + from] ?? 0) * params.scale - mean) / std;
    }
    const dims = nchw ? [1, 3, size.height, size.width] : [1, size.height, size.width, 3];
    return { tensor: tensor('float32', data, dims) };
  },
};
