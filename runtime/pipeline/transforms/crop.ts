import { z } from 'zod';
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
  const norm = [0, 1, 2].map((c) => ({
    mean: params.mean[c] ?? params.mean[0] ?? 0,
    std: params.std[c] ?? params.std[0] ?? 1,
    from: params.colorOrder === 'BGR' ? 2 - c : c,
  }));
  const pixel = (px: number, py: number, c: number): number => {
    const x = Math.min(Math.max(px, 0), imageWidth - 1);
    const y = Math.min(Math.max(py, 0), imageHeight - 1);
    const x0 = Math.floor(x);
    const y0 = Math.floor(y);
    const x1 = Math.min(x0 + 1, imageWidth - 1);
    const y1 = Math.min(y0 + 1, imageHeight - 1);
    const fx = x - x0;
    const fy = y - y0;
    const v = (xx: number, yy: number) => image[(yy * imageWidth + xx) * 3 + c] ?? 0;
    return (v(x0, y0) * (1 - fx) + v(x1, y0) * fx) * (1 - fy) + (v(x0, y1) * (1 - fx) + v(x1, y1) * fx) * fy;
  };
  for (let i = 0; i < count; i++) {
    const { c, w, h } = shapes[i] as { c: Corners; w: number; h: number };
    const tw = widths[i] as number;
    const k = Math.max(1, Math.min(8, Math.round(Math.max(h / height, w / tw))));
    const [x0, x1, x2, x3] = c.x;
    const [y0, y1, y2, y3] = c.y;
    const base = i * 3 * plane;
    for (let v = 0; v < height; v++) {
      for (let u = 0; u < tw; u++) {
        const sum = [0, 0, 0];
        for (let sv = 0; sv < k; sv++) {
          const t = (v + (sv + 0.5) / k) / height;
          for (let su = 0; su < k; su++) {
            const s = (u + (su + 0.5) / k) / tw;
            const px = (1 - s) * (1 - t) * x0 + s * (1 - t) * x1 + s * t * x2 + (1 - s) * t * x3 - 0.5;
            const py = (1 - s) * (1 - t) * y0 + s * (1 - t) * y1 + s * t * y2 + (1 - s) * t * y3 - 0.5;
            for (let ch = 0; ch < 3; ch++) sum[ch] = (sum[ch] ?? 0) + pixel(px, py, ch);
          }
        }
        for (let ch = 0; ch < 3; ch++) {
          const n = norm[ch] as { mean: number; std: number; from: number };
          const value = (sum[n.from] ?? 0) / (k * k);
          data[base + ch * plane + v * width + u] = (value * params.scale - n.mean) / n.std;
        }
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
