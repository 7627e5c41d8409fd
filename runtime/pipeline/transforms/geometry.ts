/**
 * Plane geometry for text boxes: convex hull (Andrew's monotone chain) and the minimum-area enclosing rectangle
 * (rotating calipers: the best rectangle has a side collinear with a hull edge, Freeman & Shapira 1975), the two
 * things DBNet's post-processing asks of OpenCV (`cv2.minAreaRect`, `cv2.boxPoints`).
 */
export interface Point {
  readonly x: number;
  readonly y: number;
}

/** A rotated rectangle: four corners clockwise (in image coordinates, y down) from the top-left one. */
export interface Quad {
  readonly points: readonly [Point, Point, Point, Point];
  /** Length of the shorter side. */
  readonly short: number;
  readonly width: number;
  readonly height: number;
}

const cross = (o: Point, a: Point, b: Point): number => (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);

/** Convex hull, counter-clockwise (in y-up terms), without collinear points; fewer than 3 points come back as given. */
export function convexHull(points: readonly Point[]): Point[] {
  const sorted = [...points].sort((a, b) => a.x - b.x || a.y - b.y);
  if (sorted.length < 3) return sorted;
  const lower: Point[] = [];
  for (const p of sorted) {
    while (lower.length >= 2 && cross(lower[lower.length - 2] as Point, lower[lower.length - 1] as Point, p) <= 0)
      lower.pop();
    lower.push(p);
  }
  const upper: Point[] = [];
  for (let i = sorted.length - 1; i >= 0; i--) {
    const p = sorted[i] as Point;
    while (upper.length >= 2 && cross(upper[upper.length - 2] as Point, upper[upper.length - 1] as Point, p) <= 0)
      upper.pop();
    upper.push(p);
  }
  lower.pop();
  upper.pop();
  return lower.concat(upper);
}

/** The minimum-area rectangle around `points` (degenerate inputs give a zero-width or zero-height rectangle). */
export function minAreaRect(points: readonly Point[]): Quad {
  const hull = convexHull(points);
  if (hull.length === 0) return orderQuad([origin, origin, origin, origin]);
  let best: { area: number; corners: [Point, Point, Point, Point] } | undefined;
  const edges = hull.length === 1 ? 1 : hull.length;
  for (let i = 0; i < edges; i++) {
    const a = hull[i] as Point;
    const b = hull[(i + 1) % hull.length] as Point;
    const length = Math.hypot(b.x - a.x, b.y - a.y);
    const ux = length === 0 ? 1 : (b.x - a.x) / length;
    const uy = length === 0 ? 0 : (b.y - a.y) / length;
    let minU = Infinity;
    let maxU = -Infinity;
    let minV = Infinity;
    let maxV = -Infinity;
    for (const p of hull) {
      const u = p.x * ux + p.y * uy;
      const v = -p.x * uy + p.y * ux;
      minU = Math.min(minU, u);
      maxU = Math.max(maxU, u);
      minV = Math.min(minV, v);
      maxV = Math.max(maxV, v);
    }
    const area = (maxU - minU) * (maxV - minV);
    if (best === undefined || area < best.area) {
      const at = (u: number, v: number): Point => ({ x: u * ux - v * uy, y: u * uy + v * ux });
      best = { area, corners: [at(minU, minV), at(maxU, minV), at(maxU, maxV), at(minU, maxV)] };
    }
  }
  return orderQuad((best as { corners: [Point, Point, Point, Point] }).corners);
}

const origin: Point = { x: 0, y: 0 };

/**
 * Corners in reading order: top-left, top-right, bottom-right, bottom-left, as PaddleOCR's `get_mini_boxes` orders
 * `cv2.boxPoints` (the two leftmost points, the upper one first; then the two rightmost, the upper one first).
 */
export function orderQuad(corners: readonly [Point, Point, Point, Point]): Quad {
  const byX = [...corners].sort((a, b) => a.x - b.x || a.y - b.y);
  const [l1, l2, r1, r2] = byX as [Point, Point, Point, Point];
  const [tl, bl] = l1.y <= l2.y ? [l1, l2] : [l2, l1];
  const [tr, br] = r1.y <= r2.y ? [r1, r2] : [r2, r1];
  const width = Math.hypot(tr.x - tl.x, tr.y - tl.y);
  const height = Math.hypot(bl.x - tl.x, bl.y - tl.y);
  return { points: [tl, tr, br, bl], short: Math.min(width, height), width, height };
}

/**
 * Grows a rectangle outward by `distance` on every side. For a convex polygon this is what pyclipper's offset does
 * to PaddleOCR's box in `unclip` (rounded corners aside, which the following min-area rectangle squares off again).
 */
export function expandQuad(quad: Quad, distance: number): Quad {
  const [tl, tr, br, bl] = quad.points;
  const cx = (tl.x + tr.x + br.x + bl.x) / 4;
  const cy = (tl.y + tr.y + br.y + bl.y) / 4;
  const w = quad.width;
  const h = quad.height;
  const ux = w === 0 ? 1 : (tr.x - tl.x) / w;
  const uy = w === 0 ? 0 : (tr.y - tl.y) / w;
  const vx = -uy;
  const vy = ux;
  const hw = w / 2 + distance;
  const hh = h / 2 + distance;
  const at = (su: number, sv: number): Point => ({
    x: cx + su * hw * ux + sv * hh * vx,
    y: cy + su * hw * uy + sv * hh * vy,
  });
  return orderQuad([at(-1, -1), at(1, -1), at(1, 1), at(-1, 1)]);
}
