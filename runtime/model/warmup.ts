import { logger } from '../log.js';
import { messageOf } from '../errors.js';
import { syntheticData, elementCount, type TensorLike } from '../tensor/tensor.js';
import type { Feeds, Model } from './model.js';
import { readTestVectors } from './test-vectors.js';
import { concreteShape } from './validate.js';

const log = logger('runtime.warmup');

/** Synthetic feeds of the model's input shapes (symbols bound, batch-like ones 1); throws naming an unbound symbol. */
export function syntheticFeeds(model: Model, bindings: Readonly<Record<string, number>> = {}): Feeds {
  const feeds: Record<string, TensorLike> = {};
  model.inputs.forEach((spec, i) => {
    const dims = concreteShape(spec, bindings);
    feeds[spec.name] = { data: syntheticData(spec.dtype, elementCount(dims), i + 1), dims, type: spec.dtype };
  });
  return feeds;
}

/** Representative feeds: the artifact's first test vector (real data) when it has one, else synthetic. */
export async function sampleFeeds(model: Model, bindings: Readonly<Record<string, number>> = {}): Promise<Feeds> {
  const [first] = await readTestVectors(model, 1);
  return first?.inputs ?? syntheticFeeds(model, bindings);
}

/**
 * The first runs of a session pay for memory-pattern planning and kernel selection; pay them at load, not on the
 * first real request. With test vectors, warm-up runs them and any failure is the artifact's and propagates. With
 * synthetic data it is best effort: a model whose inputs cannot be synthesised (an unbound sequence length) or that
 * rejects synthetic values is simply not warmed, and says so at debug level.
 */
export async function warmUp(model: Model, runs: number, bindings: Readonly<Record<string, number>>): Promise<void> {
  if (runs <= 0) return;
  const [vector] = await readTestVectors(model, 1);
  if (vector !== undefined) {
    for (let i = 0; i < runs; i++) await model.infer(vector.inputs);
    return;
  }
  try {
    const feeds = syntheticFeeds(model, bindings);
    for (let i = 0; i < runs; i++) await model.infer(feeds);
  } catch (error) {
    log.debug({ model: model.name, reason: messageOf(error) }, 'warm-up skipped');
  }
}
