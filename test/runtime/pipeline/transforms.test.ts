import { describe, expect, it } from 'vitest';
import { isOutpostError } from '../../../runtime/errors.js';
import { convexHull, minAreaRect } from '../../../runtime/pipeline/transforms/geometry.js';
import { maskToBoxes, maskToBoxesParams } from '../../../runtime/pipeline/transforms/mask-to-boxes.js';
import { cropBoxes, cropParams } from '../../../runtime/pipeline/transforms/crop.js';
import { ctcClasses, ctcDecode } from '../../../runtime/pipeline/transforms/ctc-decode.js';
import { nms, nmsParams } from '../../../runtime/pipeline/transforms/nms.js';
import { MAX_LIST_ITEMS, TRANSFORMS } from '../../../runtime/pipeline/transforms/index.js';
import type { TensorValue } from '../../../runtime/backends/index.js';

const noFiles = { file: (p: string) => p };

/** A probability map with filled rectangles [x, y, w, h] at `p`, 0.05 elsewhere. */
function map(width: number, height: number, rects: readonly [number, number, number, number][], p = 0.9): Float32Array {
  const m = new Float32Array(width * height).fill(0.05);
  for (const [x, y, w, h] of rects) for (let r = y; r < y + h; r++) m.fill(p, r * width + x, r * width + x + w);
  return m;
}

function expectCode(fn: () => unknown, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(isOutpostError(caught) ? caught.code : caught).toBe(code);
}

describe('geometry', () => {
  it('hull drops interior and collinear points; min-area rectangle of a rotated square is the square', () => {
    expect(
      convexHull([
        { x: 0, y: 0 },
        { x: 2, y: 0 },
        { x: 1, y: 0 },
        { x: 1, y: 1 },
        { x: 2, y: 2 },
        { x: 0, y: 2 },
      ]),
    ).toHaveLength(4);
    const diamond = [
      { x: 5, y: 0 },
      { x: 10, y: 5 },
      { x: 5, y: 10 },
      { x: 0, y: 5 },
    ];
    const rect = minAreaRect(diamond);
    expect(rect.width * rect.height).toBeCloseTo(50, 6); // the diamond itself, not its 100-unit bounding box
    expect(rect.short).toBeCloseTo(Math.sqrt(50), 6);
  });
});

describe('mask-to-boxes', () => {
  const params = maskToBoxesParams.parse({});

  it('finds each region, grows it by the unclip distance, scales it and orders top to bottom', () => {
    const m = map(100, 60, [
      [10, 40, 60, 8], // lower line
      [20, 10, 40, 10], // upper line
    ]);
    const boxes = maskToBoxes(m, 100, 60, params, { x: 2, y: 2 });
    expect(boxes).toHaveLength(2);
    const [upper, lower] = boxes;
    // Pixel centres 20…59 × 10…19: a 39 × 9 rectangle; d = 39·9·1.5 / (2·48) ≈ 5.48 on every side; then × 2.
    expect(upper?.quad.points[0].x).toBeCloseTo(2 * (20 - 5.48), 0);
    expect(upper?.quad.points[0].y).toBeCloseTo(2 * (10 - 5.48), 0);
    expect(upper?.quad.points[2].x).toBeCloseTo(2 * (59 + 5.48), 0);
    expect(upper?.score).toBeCloseTo(0.9, 5);
    expect(lower?.quad.points[0].y).toBeGreaterThan(upper?.quad.points[0].y ?? Infinity);
  });

  it('drops regions under the box threshold or the minimum size; an empty map gives no boxes', () => {
    expect(maskToBoxes(map(50, 50, [[5, 5, 20, 10]], 0.5), 50, 50, params)).toHaveLength(0); // score 0.5 < 0.6
    expect(maskToBoxes(map(50, 50, [[5, 5, 20, 2]]), 50, 50, params)).toHaveLength(0); // short side 1 < 3
    expect(maskToBoxes(new Float32Array(2500), 50, 50, params)).toHaveLength(0);
  });

  it('reads one line left to right when tops are within the tolerance', () => {
    const boxes = maskToBoxes(
      map(200, 40, [
        [120, 12, 40, 10],
        [10, 10, 40, 10],
      ]),
      200,
      40,
      params,
    );
    const [left, right] = boxes.map((b) => b.quad.points[0].x);
    expect(left).toBeLessThan(20); // the box at x = 10 first, although its top is 2 px higher
    expect(right).toBeGreaterThan(100);
  });

  it('more boxes than maxBoxes is PIPELINE_LIMIT_EXCEEDED; parameters out of range are refused', () => {
    const rects = Array.from({ length: 5 }, (_, i): [number, number, number, number] => [5, 5 + i * 12, 30, 6]);
    expectCode(() => maskToBoxes(map(60, 70, rects), 60, 70, { ...params, maxBoxes: 4 }), 'PIPELINE_LIMIT_EXCEEDED');
    expect(maskToBoxesParams.safeParse({ threshold: 1.5 }).success).toBe(false);
    expect(maskToBoxesParams.safeParse({ unclipRatio: 0 }).success).toBe(false);
    expect(maskToBoxesParams.safeParse({ maxBoxes: MAX_LIST_ITEMS + 1 }).success).toBe(false);
  });
});

describe('crop', () => {
  const params = cropParams.parse({ minWidth: 8 });
  /** 40 × 20 RGB image: left half red, right half blue. */
  const image = new Uint8Array(40 * 20 * 3);
  for (let p = 0; p < 40 * 20; p++) image.set(p % 40 < 20 ? [255, 0, 0] : [0, 0, 255], p * 3);

  it('samples each box at the target height, keeps its aspect ratio, pads the batch and normalises (BGR)', () => {
    const boxes = Float32Array.from([0, 0, 20, 0, 20, 10, 0, 10, /* */ 20, 0, 40, 0, 40, 20, 20, 20]);
    const { data, dims } = cropBoxes(image, 40, 20, boxes, 2, { ...params, height: 16 });
    expect(dims).toEqual([2, 3, 16, 32]); // 20 × 10 → 32 wide at height 16; 20 × 20 → 16 wide, padded to 32
    const at = (i: number, c: number, y: number, x: number) => data[((i * 3 + c) * 16 + y) * 32 + x];
    expect(at(0, 2, 8, 10)).toBeCloseTo(1, 5); // crop 0 is red: BGR channel 2 = (255/255 − 0.5) / 0.5
    expect(at(0, 0, 8, 10)).toBeCloseTo(-1, 5);
    expect(at(1, 0, 8, 8)).toBeCloseTo(1, 5); // crop 1 is blue: channel 0
    expect(at(1, 0, 8, 20)).toBe(0); // padding
  });

  it('turns an upright box a quarter; 0 boxes give an empty batch', () => {
    const tall = Float32Array.from([0, 0, 10, 0, 10, 20, 0, 20]);
    expect(cropBoxes(image, 40, 20, tall, 1, { ...params, height: 10 }).dims).toEqual([1, 3, 10, 20]);
    expect(cropBoxes(image, 40, 20, new Float32Array(0), 0, params).dims).toEqual([0, 3, 48, 8]);
  });

  it('10,000 boxes is PIPELINE_LIMIT_EXCEEDED before anything is allocated', () => {
    expectCode(() => cropBoxes(image, 40, 20, new Float32Array(10_000 * 8), 10_000, params), 'PIPELINE_LIMIT_EXCEEDED');
  });
});

describe('ctc-decode', () => {
  const classes = ctcClasses(['a', 'b'], { blank: 'first', space: true }); // ['', a, b, ' ']

  /** [1, T, 4] one-hot rows for the class sequence. */
  function probs(sequence: readonly number[]): Float32Array {
    const p = new Float32Array(sequence.length * 4);
    sequence.forEach((c, t) => (p[t * 4 + c] = 0.9));
    return p;
  }

  it('collapses repeats, drops blanks, keeps a repeat separated by a blank; scores the kept classes', () => {
    const { text, scores } = ctcDecode(probs([1, 1, 0, 1, 2, 2, 3, 0, 2]), [1, 9, 4], classes, 0);
    expect(text).toEqual(['aab b']);
    expect(scores[0]).toBeCloseTo(0.9, 5);
  });

  it('a class count other than the key file’s is INPUT_SHAPE_MISMATCH', () => {
    expectCode(() => ctcDecode(new Float32Array(10), [1, 2, 5], classes, 0), 'INPUT_SHAPE_MISMATCH');
  });
});

describe('nms', () => {
  it('keeps the best of overlapping boxes per class, drops low scores, reads YOLOv8 columns', () => {
    // rows: cx, cy, w, h, class0, class1
    const rows = [
      [10, 10, 10, 10, 0.9, 0.1],
      [11, 11, 10, 10, 0.8, 0.1], // overlaps the first, same class: suppressed
      [11, 11, 10, 10, 0.1, 0.7], // same place, other class: kept
      [50, 50, 10, 10, 0.1, 0.1], // under the threshold
    ];
    const params = nmsParams.parse({});
    const kept = nms(Float32Array.from(rows.flat()), [1, 4, 6], params);
    expect(kept.map((d) => [d.cls, Number(d.score.toFixed(2))])).toEqual([
      [0, 0.9],
      [1, 0.7],
    ]);
    expect(kept[0]?.box).toEqual([5, 5, 15, 15]);
    const columns = Float32Array.from((rows[0] ?? []).map((_, f) => rows.map((r) => r[f] ?? 0)).flat());
    expect(nms(columns, [1, 6, 4], { ...params, layout: 'columns' })).toEqual(kept);
    expect(nms(Float32Array.from(rows.flat()), [1, 4, 6], { ...params, classAgnostic: true })).toHaveLength(1);
  });
});

describe('classify transforms', () => {
  it('softmax, argmax and top-k run the post-processing kernels as steps', async () => {
    const x: TensorValue = { type: 'float32', data: Float32Array.from([1, 3, 2, 0, 0, 5]), dims: [2, 3] };
    const run = async (op: string, params: unknown) => {
      const t = TRANSFORMS[op];
      if (t === undefined) throw new Error(op);
      return (await t.prepare(t.params.parse(params), noFiles))({ x });
    };
    expect(Array.from((await run('argmax', {})).indices?.data as BigInt64Array, Number)).toEqual([1, 2]);
    const top = await run('topk', { k: 2 });
    expect(top.indices?.dims).toEqual([2, 2]);
    const y = (await run('softmax', {})).y?.data as Float32Array;
    expect((y[0] ?? 0) + (y[1] ?? 0) + (y[2] ?? 0)).toBeCloseTo(1, 6);
  });
});
