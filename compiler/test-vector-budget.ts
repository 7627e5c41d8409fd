import type { TensorValue } from '../runtime/backends/index.js';
import type { Feeds } from '../runtime/model/index.js';
import { seededRandom } from '../runtime/tensor/index.js';

/**
 * Test vectors stay small next to the variants they test (issue 13: a 1024×1024 segmentation model carried 127 MB of
 * vectors beside an 88 MB model). Budget: max(1 MiB, 5 % of the smallest variant), since a device may fetch only
 * that one. Inputs are kept whole (a model cannot run on part of an input) for as many cases as fit, the first case
 * always; outputs are kept whole when they fit, else as a seeded sample of elements with their flat indices (the
 * manifest's `elements`), the same number from each output. A wrong kernel or a corrupt file changes most elements,
 * so a few hundred sampled ones still catch it; the tolerance is the variant's, as for whole outputs.
 */
export const MIN_TEST_VECTOR_BUDGET = 1024 * 1024; // bytes
export const TEST_VECTOR_BUDGET_SHARE = 0.05; // of the smallest variant's bytes
/** Fewest elements sampled from an output (when it has that many): below this the check is too thin. */
export const MIN_SAMPLED_ELEMENTS = 64;
const INDEX_BYTES = 4; // bytes: one uint32 flat index per sampled element
const NPY_HEADER_BYTES = 128; // bytes: a .npy header, at most, for these shapes
const SEED = 13;

export interface TestVector {
  readonly feeds: Feeds;
  readonly outputs: Readonly<Record<string, TensorValue>>;
  /** Output name → sampled flat indices: the output's values are kept only there. */
  readonly elements?: Readonly<Record<string, Uint32Array>>;
}

export function testVectorBudget(variantBytes: readonly number[]): number {
  const smallest = variantBytes.length === 0 ? 0 : Math.min(...variantBytes);
  return Math.max(MIN_TEST_VECTOR_BUDGET, Math.floor(TEST_VECTOR_BUDGET_SHARE * smallest));
}

/** Bytes of a tensor's data (strings count their UTF-8 length). */
function dataBytes(data: TensorValue['data']): number {
  if (Array.isArray(data)) return data.reduce((sum, s) => sum + Buffer.byteLength(s, 'utf8'), 0);
  return data.byteLength;
}

function elementBytes(t: TensorValue): number {
  const data = t.data;
  return Array.isArray(data) || data.length === 0 ? 1 : data.byteLength / data.length;
}

/** The vectors within `budget` bytes: fewer cases when their inputs do not fit, sampled outputs when theirs do not. */
export function boundTestVectors(vectors: readonly TestVector[], budget: number): TestVector[] {
  const inputBytes = (v: TestVector) =>
    Object.values(v.feeds).reduce((sum, t) => sum + dataBytes(t.data) + NPY_HEADER_BYTES, 0);
  const kept: TestVector[] = [];
  let used = 0;
  for (const v of vectors) {
    if (kept.length > 0 && used + inputBytes(v) > budget) break;
    kept.push(v);
    used += inputBytes(v);
  }
  const outputs = kept.flatMap((v) => Object.values(v.outputs));
  const whole = outputs.reduce((sum, t) => sum + dataBytes(t.data) + NPY_HEADER_BYTES, 0);
  if (used + whole <= budget || outputs.length === 0) return kept;
  const left = Math.max(0, budget - used - outputs.length * 2 * NPY_HEADER_BYTES);
  const widest = Math.max(...outputs.map(elementBytes));
  const perOutput = Math.max(MIN_SAMPLED_ELEMENTS, Math.floor(left / outputs.length / (widest + INDEX_BYTES)));
  const random = seededRandom(SEED);
  return kept.map((v) => {
    const elements: Record<string, Uint32Array> = {};
    const sampled: Record<string, TensorValue> = {};
    for (const [name, t] of Object.entries(v.outputs)) {
      if (t.data.length <= perOutput || Array.isArray(t.data)) {
        sampled[name] = t;
        continue;
      }
      const indices = sample(t.data.length, perOutput, random);
      elements[name] = indices;
      sampled[name] = { type: t.type, dims: [indices.length], data: pick(t.data, indices) };
    }
    return { feeds: v.feeds, outputs: sampled, elements };
  });
}

/** `count` distinct indices below `length`, ascending (Floyd's algorithm: no array of `length`). */
function sample(length: number, count: number, random: () => number): Uint32Array {
  const chosen = new Set<number>();
  for (let j = length - count; j < length; j++) {
    const t = Math.floor(random() * (j + 1));
    chosen.add(chosen.has(t) ? j : t);
  }
  return Uint32Array.from([...chosen].sort((a, b) => a - b));
}

function pick(data: Exclude<TensorValue['data'], string[]>, indices: Uint32Array): typeof data {
  const Kind = data.constructor as new (length: number) => typeof data;
  const out = new Kind(indices.length);
  for (let i = 0; i < indices.length; i++) out[i] = data[indices[i] ?? 0] ?? 0;
  return out;
}
