import * as z from 'zod';
import { OutpostError } from '../../errors.js';
import type { TensorSpec } from '../../artifact/manifest.js';
import { MAX_LIST_ITEMS, checkListLength } from './limits.js';
import { tensor, type TransformDef } from './types.js';

/**
 * Boxes → one padded batch of crops for a recogniser: each box (four corners, clockwise from top-left, as
 * mask-to-boxes writes them) is sampled out of the decoded image straight at the recogniser's height, its width
 * following the box's aspect ratio, then normalised and padded on the right with zeros to the widest crop of the
 * batch, as PaddleOCR's `resize_norm_img` pads (`tools/infer/predict_rec.py`; its defaults are the ones here: height
 * 48, at least 320 wide, BGR, (x / 255 − 0.5) / 0.5). A box at least 1.5 × taller than wide is turned a quarter
 * (PaddleOCR's `get_rotate_crop_image`). Sampling maps the target rectangle onto the box's quadrilateral
 * bilinearly (exact for the rectangles and parallelograms mask-to-boxes produces) and averages k × k bilinear samples
 * per pixel when shrinking by k, so small fonts and large ones reach the model alike.
 */
export const cropParams = z
  .object({
    height: z.number().int().min(8).max(512).default(48),
    minWidth: z.number().int().min(1).max(4096).default(320),
    maxWidth: z.number().int().min(8).max(4096).default(1600),
    colorOrder: z.enum(['RGB', 'BGR']).default('BGR'),
    scale: z.number().default(1 / 255),
    mean: z.array(z.number()).min(1).max(3).default([0.5, 0.5, 0.5]),
    std: z
      .array(z.number().refine((v) => v !== 0, 'a non-zero std'))
      .min(1)
      .max(3)
      .default([0.5, 0.5, 0.5]),
    rotateTall: z.boolean().default(true),
    maxBoxes: z.number().int().min(1).max(MAX_LIST_ITEMS).default(MAX_LIST_ITEMS),
  })
  .strict()
  .refine((p) => p.minWidth <= p.maxWidth, { message: 'minWidth must not exceed maxWidth', path: ['minWidth'] });
export type CropParams = z.infer<typeof cropParams>;

interface Norm {
  readonly mean: number;
  readonly std: number;
  readonly from: 0 | 1 | 2;
}

interface Corners {
  readonly x: readonly [number, number, number, number];
  readonly y: readonly [number, number, number, number];
}

/** Corners of box `i` (tl, tr, br, bl), turned a quarter when the box stands upright. */
function corners(boxes: Float32Array, i: number, rotateTall: boolean): { c: Corners; w: number; h: number } {
  const at = (k: number, axis: number) => boxes[i * 8 + k * 2 + axis] ?? 0;
  let x = [at(0, 0), at(1, 0), at(2, 0), at(3, 0)] as const;
  let y = [at(0, 1), at(1, 1), at(2, 1), at(3, 1)] as const;
  const dist = (a: 0 | 1 | 2 | 3, b: 0 | 1 | 2 | 3) => Math.hypot(x[a] - x[b], y[a] - y[b]);
  let w = Math.max(dist(0, 1), dist(3, 2));
  let h = Math.max(dist(0, 3), dist(1, 2));
  if (rotateTall && h >= 1.5 * w) {
    // np.rot90 (counter-clockwise): the old top-right corner becomes the top-left.
    x = [x[1], x[2], x[3], x[0]];
    y = [y[1], y[2], y[3], y[0]];
    [w, h] = [h, w];
  }
  return { c: { x, y }, w, h };
}

/** Crops `boxes` ([N, 4, 2]) out of `image` ([H, W, 3] uint8 RGB) into a [N, 3, height, width] float32 batch. */
export function cropBoxes(
  image: Uint8Array,
  imageWidth: number,
  imageHeight: number,
  boxes: Float32Array,
  count: number,
  params: CropParams,
): { data: Float32Array; dims: [number, number, number, number] } {
  checkListLength('crop', 'boxes', count, params.maxBoxes);
  const { height } = params;
  const shapes = Array.from({ length: count }, (_, i) => corners(boxes, i, params.rotateTall));
  const widths = shapes.map(({ w, h }) =>
    Math.max(1, Math.min(params.maxWidth, Math.ceil((height * Math.max(w, 1)) / Math.max(h, 1)))),
  );
  const width = Math.min(params.maxWidth, Math.max(params.minWidth, ...widths));
  const plane = height * width;
  const data = new Float32Array(count * 3 * plane); // zeros: the padding PaddleOCR's recogniser was trained with
  const norm: Norm[] = [0, 1, 2].map((c) => ({
    mean: params.mean[c] ?? params.mean[0] ?? 0,
    std: params.std[c] ?? params.std[0] ?? 1,
    from: (params.colorOrder === 'BGR' ? 2 - c : c) as 0 | 1 | 2,
  }));
  const [n0, n1, n2] = norm as [Norm, Norm, Norm];
  const maxX = imageWidth - 1;
  const maxY = imageHeight - 1;
  for (let i = 0; i < count; i++) {
    const { c, w, h } = shapes[i] as { c: Corners; w: number; h: number };
    const tw = widths[i] as number;
    const k = Math.max(1, Math.min(8, Math.round(Math.max(h / height, w / tw))));
    const [x0, x1, x2, x3] = c.x;
    const [y0, y1, y2, y3] = c.y;
    const base = i * 3 * plane;
    const weight = 1 / (k * k);
    for (let v = 0; v < height; v++) {
      for (let u = 0; u < tw; u++) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let sv = 0; sv < k; sv++) {
          const t = (v + (sv + 0.5) / k) / height;
          for (let su = 0; su < k; su++) {
            const s = (u + (su + 0.5) / k) / tw;
            // Bilinear map of the unit square onto the quadrilateral (tl, tr, br, bl), then to pixel centres.
            let px = (1 - s) * (1 - t) * x0 + s * (1 - t) * x1 + s * t * x2 + (1 - s) * t * x3 - 0.5;
            let py = (1 - s) * (1 - t) * y0 + s * (1 - t) * y1 + s * t * y2 + (1 - s) * t * y3 - 0.5;
            px = px < 0 ? 0 : px > maxX ? maxX : px;
            py = py < 0 ? 0 : py > maxY ? maxY : py;
            const ix = Math.floor(px);
            const iy = Math.floor(py);
            const fx = px - ix;
            const fy = py - iy;
            const dx = ix < maxX ? 3 : 0;
            const dy = iy < maxY ? imageWidth * 3 : 0;
            const p00 = (iy * imageWidth + ix) * 3;
            const w00 = (1 - fx) * (1 - fy);
            const w10 = fx * (1 - fy);
            const w01 = (1 - fx) * fy;
            const w11 = fx * fy;
            r +=
              (image[p00] as number) * w00 +
              (image[p00 + dx] as number) * w10 +
              (image[p00 + dy] as number) * w01 +
              (image[p00 + dx + dy] as number) * w11;
            g +=
              (image[p00 + 1] as number) * w00 +
              (image[p00 + dx + 1] as number) * w10 +
              (image[p00 + dy + 1] as number) * w01 +
              (image[p00 + dx + dy + 1] as number) * w11;
            b +=
              (image[p00 + 2] as number) * w00 +
              (image[p00 + dx + 2] as number) * w10 +
              (image[p00 + dy + 2] as number) * w01 +
              (image[p00 + dx + dy + 2] as number) * w11;
          }
        }
        const rgb = [r * weight, g * weight, b * weight] as const;
        const at = base + v * width + u;
        data[at] = (rgb[n0.from] * params.scale - n0.mean) / n0.std;
        data[at + plane] = (rgb[n1.from] * params.scale - n1.mean) / n1.std;
        data[at + 2 * plane] = (rgb[n2.from] * params.scale - n2.mean) / n2.std;
      }
    }
  }
  return { data, dims: [count, 3, height, width] };
}

export const cropTransform: TransformDef<CropParams> = {
  op: 'crop',
  summary: 'image [H, W, 3] + boxes [N, 4, 2] → normalised crops [N, 3, height, width], padded to one width',
  params: cropParams,
  inputs: [
    { name: 'image', dtypes: ['uint8'], rank: 3 },
    { name: 'boxes', dtypes: ['float32'], rank: 3 },
  ],
  outputs: (params, inputs): TensorSpec[] => [
    { name: 'crops', dtype: 'float32', shape: [inputs.boxes?.shape[0] ?? 'boxes', 3, params.height, 'width'] },
  ],
  prepare: (params) => (inputs) => {
    const { image, boxes } = inputs;
    if (image === undefined || boxes === undefined)
      throw new OutpostError('INPUT_MISSING', 'crop: needs image and boxes');
    const [imageHeight = 0, imageWidth = 0, channels] = image.dims;
    if (channels !== 3) {
      throw new OutpostError(
        'INPUT_SHAPE_MISMATCH',
        `crop: image of shape [${image.dims.join(', ')}]; expected [H, W, 3]`,
      );
    }
    const [count = 0, four, two] = boxes.dims;
    if (four !== 4 || two !== 2) {
      throw new OutpostError(
        'INPUT_SHAPE_MISMATCH',
        `crop: boxes of shape [${boxes.dims.join(', ')}]; expected [N, 4, 2]`,
      );
    }
    const { data, dims } = cropBoxes(
      image.data as Uint8Array,
      imageWidth,
      imageHeight,
      boxes.data as Float32Array,
      count,
      params,
    );
    return { crops: tensor('float32', data, dims) };
  },
};
