import * as z from 'zod';
import { OutpostError } from '../../errors.js';
import type { TensorSpec } from '../../artifact/manifest.js';
import { expandQuad, minAreaRect, type Point, type Quad } from './geometry.js';
import { MAX_LIST_ITEMS, checkListLength } from './limits.js';
import { tensor, type TransformDef } from './types.js';

/**
 * DBNet's post-processing (Liao et al. 2020; PaddleOCR `ppocr/postprocess/db_postprocess.py`, `DBPostProcess`):
 * probability map → binary map at `threshold` → connected regions (8-connected) → minimum-area rectangle of each →
 * score = mean probability over the region (PaddleOCR's `score_mode: slow`) → drop below `boxThreshold` or with a short
 * side under `minSize` → grow by `unclipRatio` (offset distance = area × ratio / perimeter, as `unclip`) → drop
 * if the short side is under `minSize + 2` → scale to the reference image's size. Boxes come out top to bottom, left
 * to right on one line (PaddleOCR's `sorted_boxes`, with its 10 px line tolerance measured in the reference image).
 * Defaults are PaddleOCR's for PP-OCRv4 (`det_db_thresh`, `det_db_box_thresh`, `det_db_unclip_ratio`).
 */
export const maskToBoxesParams = z
  .object({
    threshold: z.number().gt(0).lt(1).default(0.3),
    boxThreshold: z.number().min(0).max(1).default(0.6),
    unclipRatio: z.number().gt(0).max(10).default(1.5),
    minSize: z.number().min(0).max(10_000).default(3), // pixels of the probability map
    maxBoxes: z.number().int().min(1).max(MAX_LIST_ITEMS).default(MAX_LIST_ITEMS),
    lineTolerance: z.number().min(0).max(1000).default(10), // pixels of the reference image
  })
  .strict();
export type MaskToBoxesParams = z.infer<typeof maskToBoxesParams>;

export interface Box {
  readonly quad: Quad;
  readonly score: number;
}

/** Connected regions of `map > threshold` with their minimum-area rectangles and mean probabilities. */
export function maskToBoxes(
  map: Float32Array,
  width: number,
  height: number,
  params: MaskToBoxesParams,
  scale: { x: number; y: number } = { x: 1, y: 1 },
): Box[] {
  const seen = new Uint8Array(width * height);
  const stack = new Int32Array(width * height);
  const boxes: Box[] = [];
  for (let start = 0; start < map.length; start++) {
    if (seen[start] === 1 || !((map[start] ?? 0) > params.threshold)) continue;
    // Flood fill, keeping each row's leftmost and rightmost pixel: the hull of those is the region's hull.
    const rowMin = new Map<number, number>();
    const rowMax = new Map<number, number>();
    let top = 0;
    let sum = 0;
    let count = 0;
    stack[top++] = start;
    seen[start] = 1;
    while (top > 0) {
      const p = stack[--top] as number;
      const x = p % width;
      const y = (p - x) / width;
      sum += map[p] ?? 0;
      count++;
      if (!((rowMin.get(y) ?? Infinity) <= x)) rowMin.set(y, x);
      if (!((rowMax.get(y) ?? -Infinity) >= x)) rowMax.set(y, x);
      for (let dy = -1; dy <= 1; dy++) {
        const ny = y + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          if (nx < 0 || nx >= width) continue;
          const q = ny * width + nx;
          if (seen[q] === 1 || !((map[q] ?? 0) > params.threshold)) continue;
          seen[q] = 1;
          stack[top++] = q;
        }
      }
    }
    const edge: Point[] = [];
    for (const [y, x] of rowMin) edge.push({ x, y }, { x: rowMax.get(y) ?? x, y });
    const rect = minAreaRect(edge);
    if (rect.short < params.minSize) continue;
    const score = sum / count;
    if (score < params.boxThreshold) continue;
    const area = rect.width * rect.height;
    const perimeter = 2 * (rect.width + rect.height);
    const grown = expandQuad(rect, perimeter === 0 ? 0 : (area * params.unclipRatio) / perimeter);
    if (grown.short < params.minSize + 2) continue;
    boxes.push({ quad: scaleQuad(grown, scale, width, height), score });
    checkListLength('mask-to-boxes', 'boxes', boxes.length, params.maxBoxes);
  }
  return sortBoxes(boxes, params.lineTolerance);
}

function scaleQuad(quad: Quad, scale: { x: number; y: number }, width: number, height: number): Quad {
  const clip = (v: number, max: number) => Math.min(Math.max(Math.round(v), 0), max);
  const [a, b, c, d] = quad.points.map((p) => ({
    x: clip(p.x * scale.x, width * scale.x),
    y: clip(p.y * scale.y, height * scale.y),
  })) as [Point, Point, Point, Point];
  const w = Math.hypot(b.x - a.x, b.y - a.y);
  const h = Math.hypot(d.x - a.x, d.y - a.y);
  return { points: [a, b, c, d], width: w, height: h, short: Math.min(w, h) };
}

/** Top to bottom; boxes whose tops are within `tolerance` of each other read left to right (`sorted_boxes`). */
export function sortBoxes(boxes: Box[], tolerance: number): Box[] {
  const top = (b: Box) => b.quad.points[0];
  boxes.sort((a, b) => top(a).y - top(b).y || top(a).x - top(b).x);
  for (let i = 0; i < boxes.length - 1; i++) {
    for (let j = i; j >= 0; j--) {
      const a = boxes[j] as Box;
      const b = boxes[j + 1] as Box;
      if (Math.abs(top(b).y - top(a).y) < tolerance && top(b).x < top(a).x) {
        boxes[j] = b;
        boxes[j + 1] = a;
      } else break;
    }
  }
  return boxes;
}

/** [1, 1, H, W] (a detector's map), [1, H, W] or [H, W] → H, W. */
function mapSize(dims: readonly number[]): { height: number; width: number } {
  const lead = dims.slice(0, -2);
  if (dims.length < 2 || dims.length > 4 || lead.some((d) => d !== 1)) {
    throw new OutpostError(
      'INPUT_SHAPE_MISMATCH',
      `mask-to-boxes: mask of shape [${dims.join(', ')}]; expected [1, 1, H, W], [1, H, W] or [H, W]`,
    );
  }
  return { height: dims[dims.length - 2] ?? 0, width: dims[dims.length - 1] ?? 0 };
}

export const maskToBoxesTransform: TransformDef<MaskToBoxesParams> = {
  op: 'mask-to-boxes',
  summary: 'probability map → rotated text boxes [N, 4, 2] and scores [N] (DBNet post-processing)',
  params: maskToBoxesParams,
  inputs: [
    { name: 'mask', dtypes: ['float32'] },
    // The decoded image the map was computed from: boxes are scaled to its size. Without it, map coordinates.
    { name: 'image', dtypes: ['uint8'], rank: 3, optional: true },
  ],
  outputs: (): TensorSpec[] => [
    { name: 'boxes', dtype: 'float32', shape: ['boxes', 4, 2] },
    { name: 'scores', dtype: 'float32', shape: ['boxes'] },
  ],
  prepare: (params) => (inputs) => {
    const mask = inputs.mask;
    if (mask === undefined) throw new OutpostError('INPUT_MISSING', 'mask-to-boxes: no mask');
    const { width, height } = mapSize(mask.dims);
    const image = inputs.image;
    const scale =
      image === undefined
        ? { x: 1, y: 1 }
        : { x: (image.dims[1] ?? width) / width, y: (image.dims[0] ?? height) / height };
    const boxes = maskToBoxes(mask.data as Float32Array, width, height, params, scale);
    const points = new Float32Array(boxes.length * 8);
    const scores = new Float32Array(boxes.length);
    boxes.forEach((box, i) => {
      box.quad.points.forEach((p, k) => {
        points[i * 8 + k * 2] = p.x;
        points[i * 8 + k * 2 + 1] = p.y;
      });
      scores[i] = box.score;
    });
    return {
      boxes: tensor('float32', points, [boxes.length, 4, 2]),
      scores: tensor('float32', scores, [boxes.length]),
    };
  },
};
