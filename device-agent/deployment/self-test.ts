import type { KeyObject } from 'node:crypto';
import { latencyStats, measure } from '../../runtime/tuning/index.js';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { loadModel, type Model, readTestVectors, syntheticFeeds } from '../../runtime/model/index.js';
import { allClose, type TensorLike } from '../../runtime/tensor/index.js';

const log = logger('agent.self-test');

export interface SelfTestOptions {
  readonly trustedKeys: readonly (string | KeyObject)[];
  readonly requireSignature: boolean;
  readonly backend: 'auto' | 'native' | 'wasm';
  /** Timed runs per candidate when the artifact leaves the choice of variant to the device. */
  readonly benchmarkIterations: number;
  /** Variants not fetched to this device (ModelStore.absentVariants): not candidates. */
  readonly absentVariants?: readonly string[];
  /** Benchmark every passing candidate even when the artifact fixes the choice (agent `benchmarkVariants` > 1). */
  readonly benchmark?: boolean;
}

export interface SelfTestResult {
  /** The chosen variant, loaded and ready to serve; the caller owns it. */
  readonly model: Model;
  /** p50 (ms) per candidate that passed, when the device chose among several. */
  readonly benchmark?: Readonly<Record<string, number>>;
  /** Candidates that failed, with why. */
  readonly failures: readonly { variant: string; reason: string }[];
}

/** Runs the artifact's test vectors through a loaded variant; throws SELF_TEST_FAILED naming the first mismatch. */
async function checkVectors(model: Model): Promise<void> {
  const vectors = await readTestVectors(model);
  const tolerance = model.variant.tolerance ?? model.manifest.testVectors?.tolerance ?? { atol: 1e-4, rtol: 1e-3 };
  if (vectors.length === 0) {
    // No recorded answers: at least prove the session runs on inputs of the declared shapes.
    await model.infer(syntheticFeeds(model, model.bindings));
    return;
  }
  for (const vector of vectors) {
    const outputs = await model.infer(vector.inputs);
    for (const [name, expected] of Object.entries(vector.expected)) {
      const actual = outputs[name];
      if (actual === undefined)
        throw new OutpostError('SELF_TEST_FAILED', `test vector ${vector.id}: no output "${name}"`);
      const indices = vector.elements[name];
      if (indices !== undefined && indices.some((i) => i >= actual.data.length)) {
        throw new OutpostError(
          'SELF_TEST_FAILED',
          `test vector ${vector.id}, output "${name}": ${actual.data.length} elements, fewer than the sample expects`,
        );
      }
      const check = allClose(
        indices === undefined ? actual.data : gather(actual.data, indices),
        expected.data,
        tolerance.atol,
        tolerance.rtol,
        expected.type,
      );
      if (!check.ok) {
        throw new OutpostError(
          'SELF_TEST_FAILED',
          `test vector ${vector.id}, output "${name}"[${check.index}]: got ${check.actual}, expected ${check.expected} (atol ${tolerance.atol}, rtol ${tolerance.rtol})`,
        );
      }
    }
  }
}

/** The elements of `data` at `indices` (a sampled test vector's), in that order, in an array of `data`'s kind. */
function gather(data: TensorLike['data'], indices: Uint32Array): TensorLike['data'] {
  if (Array.isArray(data)) return Array.from(indices, (i) => data[i] ?? '');
  const Kind = data.constructor as new (length: number) => typeof data;
  const out = new Kind(indices.length);
  for (let i = 0; i < indices.length; i++) out[i] = data[indices[i] ?? 0] ?? out[i] ?? 0;
  return out;
}

/**
 * The device's self-test of an installed (or staged) artifact: load each candidate variant (verified again on
 * load), run its test vectors within tolerance; with `selection: device` benchmark every passing candidate here
 * and keep the fastest, otherwise keep the best-ranked one that passes.
 */
export async function selfTest(dir: string, options: SelfTestOptions): Promise<SelfTestResult> {
  const load = (variant?: string) =>
    loadModel(dir, {
      ...(variant === undefined ? {} : { variant }),
      backend: options.backend,
      trustedKeys: options.trustedKeys,
      requireSignature: options.requireSignature,
      warmup: 0,
      ...(options.absentVariants === undefined ? {} : { absentVariants: options.absentVariants }),
    });
  const probe = await load();
  const manifest = probe.manifest;
  const absent = options.absentVariants ?? [];
  const ranked = [...manifest.variants]
    .filter((v) => !absent.includes(v.id))
    .sort((a, b) => a.rank - b.rank)
    .map((v) => v.id);
  await probe.release();
  const failures: { variant: string; reason: string }[] = [];
  const passed: Model[] = [];
  for (const id of ranked) {
    let model: Model | undefined;
    try {
      model = await load(id);
      await checkVectors(model);
      passed.push(model);
      if (manifest.selection === 'fixed' && options.benchmark !== true) break;
    } catch (error) {
      failures.push({ variant: id, reason: messageOf(error) });
      await model?.release();
    }
  }
  const [first] = passed;
  if (first === undefined) {
    throw new OutpostError(
      'SELF_TEST_FAILED',
      `no variant passed its self-test: ${failures.map((f) => `${f.variant}: ${f.reason}`).join('; ')}`,
      {
        details: { failures },
      },
    );
  }
  if (passed.length === 1) return { model: first, failures };

  const benchmark: Record<string, number> = {};
  for (const model of passed) {
    const [vector] = await readTestVectors(model, 1);
    const feeds = vector?.inputs ?? syntheticFeeds(model, model.bindings);
    const run = await measure(() => model.infer(feeds), {
      warmup: 5,
      iterations: options.benchmarkIterations,
      concurrency: 1,
    });
    benchmark[model.variant.id] = latencyStats(run.samples).p50;
  }
  const fastest = passed.reduce((best, m) =>
    (benchmark[m.variant.id] ?? Infinity) < (benchmark[best.variant.id] ?? Infinity) ? m : best,
  );
  for (const m of passed) if (m !== fastest) await m.release();
  log.info({ benchmark, chosen: fastest.variant.id, backend: fastest.backend }, 'variants benchmarked on the device');
  return { model: fastest, benchmark, failures };
}
