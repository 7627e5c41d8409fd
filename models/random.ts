/**
 * Mulberry32, seeded: sample weights are the same bytes on every machine. (models/ may use only compiler/onnx,
 * per docs/architecture.md, "Who may import whom", so it keeps its own copy of this six-line generator rather than
 * reaching into runtime/.)
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
