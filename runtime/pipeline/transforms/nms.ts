import * as z from 'zod';
import { OutpostError } from '../../errors.js';
import type { TensorSpec } from '../../artifact/manifest.js';
import { MAX_LIST_ITEMS } from './limits.js';
import { tensor, type TransformDef } from './types.js';

/**
 * Non-maximum suppression for YOLO-style detector heads: candidates as rows `[box(4), objectness?, class scores…]`
 * (YOLOv5: [1, N, 5 + C]) or as columns (YOLOv8: [1, 4 + C, N], `layout: "columns"`); a candidate's score is its best
 * class score (times objectness when present); candidates under `scoreThreshold` are dropped, then greedy NMS per
 * class (or across classes) at `iouThreshold`, best first, at most `maxDetections`. Boxes come out as
 * [x1, y1, x2, y2] in the head's coordinates. Defaults are Ultralytics' (`conf=0.25`, `iou=0.45`, `max_det=300`).
 */
export const nmsParams = z
  .object({
    layout: z.enum(['rows', 'columns']).default('rows'),
    boxFormat: z.enum(['cxcywh', 'xyxy']).default('cxcywh'),
    objectness: z.boolean().default(false),
    scoreThreshold: z.number().min(0).max(1).default(0.25),
    iouThreshold: z.number().min(0).max(1).default(0.45),
    maxDetections: z.number().int().min(1).max(MAX_LIST_ITEMS).default(300),
    classAgnostic: z.boolean().default(false),
  })
  .strict();
export type NmsParams = z.infer<typeof nmsParams>;

export interface Detection {
  readonly box: [number, number, number, number];
  readonly score: number;
  readonly cls: number;
}

function iou(a: Detection['box'], b: Detection['box']): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union <= 0 ? 0 : inter / union;
}

/** Greedy NMS over a [1, N, F] or [1, F, N] head output. */
export function nms(data: Float32Array, dims: readonly number[], params: NmsParams): Detection[] {
  const [one, a = 0, b = 0] = dims;
  const [count, features] = params.layout === 'rows' ? [a, b] : [b, a];
  const lead = params.objectness ? 5 : 4;
  if (dims.length !== 3 || one !== 1 || features <= lead) {
    throw new OutpostError(
      'INPUT_SHAPE_MISMATCH',
      `nms: predictions of shape [${dims.join(', ')}]; expected [1, N, ${lead} + classes] (layout "rows") or ` +
        `[1, ${lead} + classes, N] (layout "columns")`,
    );
  }
  const at =
    params.layout === 'rows'
      ? (i: number, f: number) => data[i * features + f] ?? 0
      : (i: number, f: number) => data[f * count + i] ?? 0;
  const candidates: Detection[] = [];
  for (let i = 0; i < count; i++) {
    let cls = 0;
    let best = -Infinity;
    for (let f = lead; f < features; f++) {
      const s = at(i, f);
      if (s > best) {
        best = s;
        cls = f - lead;
      }
    }
    const score = params.objectness ? best * at(i, 4) : best;
    if (!(score >= params.scoreThreshold)) continue;
    const [p, q, r, s] = [at(i, 0), at(i, 1), at(i, 2), at(i, 3)];
    const box: Detection['box'] =
      params.boxFormat === 'xyxy' ? [p, q, r, s] : [p - r / 2, q - s / 2, p + r / 2, q + s / 2];
    candidates.push({ box, score, cls });
  }
  candidates.sort((x, y) => y.score - x.score);
  const kept: Detection[] = [];
  for (const c of candidates) {
    if (kept.length === params.maxDetections) break;
    const suppressed = kept.some(
      (k) => (params.classAgnostic || k.cls === c.cls) && iou(k.box, c.box) > params.iouThreshold,
    );
    if (!suppressed) kept.push(c);
  }
  return kept;
}

export const nmsTransform: TransformDef<NmsParams> = {
  op: 'nms',
  summary: 'YOLO head [1, N, 4 (+1) + C] or [1, 4 + C, N] → boxes [K, 4] (x1, y1, x2, y2), scores [K], classes [K]',
  params: nmsParams,
  inputs: [{ name: 'predictions', dtypes: ['float32'], rank: 3 }],
  outputs: (): TensorSpec[] => [
    { name: 'boxes', dtype: 'float32', shape: ['detections', 4] },
    { name: 'scores', dtype: 'float32', shape: ['detections'] },
    { name: 'classes', dtype: 'int64', shape: ['detections'] },
  ],
  prepare: (params) => (inputs) => {
    const predictions = inputs.predictions;
    if (predictions === undefined) throw new OutpostError('INPUT_MISSING', 'nms: no predictions');
    const kept = nms(predictions.data as Float32Array, predictions.dims, params);
    return {
      boxes: tensor('float32', Float32Array.from(kept.flatMap((d) => d.box)), [kept.length, 4]),
      scores: tensor(
        'float32',
        Float32Array.from(kept, (d) => d.score),
        [kept.length],
      ),
      classes: tensor(
        'int64',
        BigInt64Array.from(kept, (d) => BigInt(d.cls)),
        [kept.length],
      ),
    };
  },
};
