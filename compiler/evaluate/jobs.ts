import type * as Ort from 'onnxruntime-node';
import type { TensorSpec } from '../../runtime/artifact/index.js';
import type { TensorValue } from '../../runtime/backends/index.js';
import { OutpostError, messageOf } from '../../runtime/errors.js';
import { loadModel, type Feeds, type Model } from '../../runtime/model/index.js';
import { createCalibrator } from '../calibration/calibrators.js';
import { openSession } from '../quantize/ort-model.js';
import { figures, outputAgreements } from './metrics.js';
import type { CalibrateResult, EvaluatorJob, JobResults, ProbeResult, ReferenceResult } from './protocol.js';

/**
 * What the evaluator process does for each job (worker.ts receives them). Every model run is announced through
 * `step` first, so the parent can hold each run to its time and memory budget and name the input it was on.
 */
export type Step = (sample: number, total: number) => Promise<void>;

interface StoredReference {
  readonly samples: readonly Feeds[];
  readonly outputs: readonly Readonly<Record<string, TensorValue>>[];
  readonly specs: readonly TensorSpec[];
}

const references = new Map<string, StoredReference>();

/** A plain copy of an output (ONNX Runtime's tensors keep their data behind getters, which IPC would drop). */
function plain(outputs: Readonly<Record<string, TensorValue>>): Record<string, TensorValue> {
  const out: Record<string, TensorValue> = {};
  for (const [name, t] of Object.entries(outputs)) out[name] = { type: t.type, dims: [...t.dims], data: t.data };
  return out;
}

async function withModel<T>(path: string, backend: 'native' | 'wasm', step: Step, use: (m: Model) => Promise<T>) {
  await step(-1, 0);
  const model = await loadModel(path, { backend, warmup: 0, ortLogLevel: 'fatal' });
  try {
    return await use(model);
  } finally {
    await model.release();
  }
}

async function reference(job: Extract<EvaluatorJob, { kind: 'reference' }>, step: Step): Promise<ReferenceResult> {
  return withModel(job.model, 'native', step, async (model) => {
    const outputs: Record<string, TensorValue>[] = [];
    const accepted: number[] = [];
    const failed: { index: number; error: string }[] = [];
    for (const [i, feeds] of job.samples.entries()) {
      await step(i, job.samples.length);
      try {
        outputs.push(plain(await model.infer(feeds)));
        accepted.push(i);
      } catch (error) {
        if (!job.skipFailures) {
          throw new OutpostError('INFERENCE_FAILED', `the original model fails on sample ${i}: ${messageOf(error)}`, {
            cause: error,
            details: { sample: i },
          });
        }
        failed.push({ index: i, error: messageOf(error) });
      }
    }
    const specs = [...model.outputs];
    references.set(job.ref, { samples: accepted.map((i) => job.samples[i] ?? {}), outputs, specs });
    return { outputs, specs, accepted, failed };
  });
}

async function accuracy(job: Extract<EvaluatorJob, { kind: 'accuracy' }>, step: Step) {
  const ref = references.get(job.ref);
  if (ref === undefined) throw new OutpostError('INTERNAL', `evaluator: no reference "${job.ref}"`);
  return withModel(job.model, job.backend, step, async (model) => {
    const agreements = outputAgreements(ref.specs);
    for (const [i, feeds] of ref.samples.entries()) {
      await step(i, ref.samples.length);
      const actual = await model.infer(feeds);
      const expected = ref.outputs[i] ?? {};
      for (const [name, agreement] of agreements) {
        const e = expected[name];
        // An output the variant lacks disagrees everywhere (length 0 against the reference's).
        if (e !== undefined) agreement.add(actual[name]?.data ?? [], e.data, e.dims, e.type);
      }
    }
    return figures(agreements);
  });
}

async function probe(job: Extract<EvaluatorJob, { kind: 'probe' }>, step: Step): Promise<ProbeResult> {
  return withModel(job.model, 'native', step, async (model) => {
    const results: ({ ok: true } | { ok: false; error: string })[] = [];
    for (const [i, feeds] of job.samples.entries()) {
      await step(i, job.samples.length);
      try {
        await model.infer(feeds);
        results.push({ ok: true });
      } catch (error) {
        results.push({ ok: false, error: messageOf(error) });
      }
    }
    return results;
  });
}

/** Latency stays bounded too: a heartbeat (a `step`) at most every 100 ms between timed runs. */
const HEARTBEAT_MS = 100;
/** A large model is timed for this long at most (warm-up for a fifth of it); a p50 needs no more. */
const LATENCY_BUDGET_MS = 10_000;
const MIN_TIMED_RUNS = 5;

async function latency(job: Extract<EvaluatorJob, { kind: 'latency' }>, step: Step) {
  return withModel(job.model, 'native', step, async (model) => {
    const total = job.warmup + job.iterations;
    const times: number[] = [];
    let beat = performance.now();
    const began = performance.now();
    let warm = 0;
    for (let i = 0; i < total; i++) {
      const elapsed = performance.now() - began;
      const warming = warm < job.warmup && elapsed < LATENCY_BUDGET_MS / 5;
      if (!warming && times.length >= MIN_TIMED_RUNS && elapsed > LATENCY_BUDGET_MS) break;
      if (i <= 1 || performance.now() - beat > HEARTBEAT_MS) {
        await step(i, total);
        beat = performance.now();
      }
      const started = performance.now();
      await model.infer(job.sample);
      if (warming) warm++;
      else times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return { p50: times[Math.floor((times.length - 1) / 2)] ?? NaN, runs: times.length };
  });
}

/**
 * Activation ranges, one sample at a time: each run's activations are folded into the calibrator's per-tensor
 * state (a min/max or a fixed-size histogram) and dropped before the next run. A sample the model rejects (a
 * synthetic draw outside what an op accepts) is skipped and reported.
 *
 * ORT keeps every graph output of a run alive until the run returns, fetched or not, so one copy of a 1024²
 * segmentation net exposing all its activations holds ≈ 2 GB per run. The parent therefore splits the values into
 * groups of bounded size (calibration/collect.ts), each its own copy of the model exposing only that group; here each
 * group's session runs every sample and is released before the next group's opens. State per tensor is
 * order-independent, so the ranges are the same as in one pass.
 */
async function calibrate(job: Extract<EvaluatorJob, { kind: 'calibrate' }>, step: Step): Promise<CalibrateResult> {
  const ort = await import('onnxruntime-node');
  const calibrator = createCalibrator(job.method, job.options);
  const failed = new Map<number, string>();
  const total = job.groups.length * job.samples.length;
  for (const [g, group] of job.groups.entries()) {
    await step(-1, total);
    const session = await openSession(group.model, {
      graphOptimizationLevel: 'disabled',
      // No arena: ORT's BFC arena would keep each run's high-water mark for the session's life.
      enableCpuMemArena: false,
      ...(job.threads === undefined ? {} : { intraOpNumThreads: job.threads }),
    });
    try {
      // Only float32 values are quantised; integer shape arithmetic among the requested values is left out.
      const wanted = new Set(group.tensors);
      const fetches = session.outputMetadata
        .filter((m) => m.isTensor && m.type === 'float32' && wanted.has(m.name))
        .map((m) => m.name);
      if (fetches.length === 0) continue;
      for (const [i, sample] of job.samples.entries()) {
        if (failed.has(i)) continue;
        await step(g * job.samples.length + i, total);
        let results: Ort.InferenceSession.ReturnType;
        try {
          results = await session.run(feedsOf(ort, sample), fetches);
        } catch (error) {
          failed.set(i, messageOf(error));
          continue;
        }
        for (const name of fetches) {
          const data = results[name]?.data;
          if (data instanceof Float32Array) calibrator.observe(name, data);
        }
      }
    } finally {
      await session.release();
    }
  }
  for (const [i, sample] of job.samples.entries()) {
    if (failed.has(i)) continue;
    for (const name of job.inputs) {
      const data = sample[name]?.data;
      if (data instanceof Float32Array) calibrator.observe(name, data);
    }
  }
  return {
    ranges: calibrator.ranges(),
    failed: [...failed].map(([index, error]) => ({ index, error })),
    observed: job.samples.length - failed.size,
  };
}

function feedsOf(ort: typeof Ort, sample: Feeds): Record<string, Ort.Tensor> {
  // The constructor's overloads are keyed by the literal dtype; the sample was checked against the model's inputs.
  const Tensor = ort.Tensor as unknown as new (type: string, data: unknown, dims: readonly number[]) => Ort.Tensor;
  const feeds: Record<string, Ort.Tensor> = {};
  for (const [name, t] of Object.entries(sample)) feeds[name] = new Tensor(t.type ?? 'float32', t.data, t.dims);
  return feeds;
}

export async function runJob(job: EvaluatorJob, step: Step): Promise<JobResults[EvaluatorJob['kind']]> {
  switch (job.kind) {
    case 'reference':
      return reference(job, step);
    case 'adopt':
      references.set(job.ref, { samples: job.samples, outputs: job.outputs, specs: job.specs });
      return undefined;
    case 'accuracy':
      return accuracy(job, step);
    case 'probe':
      return probe(job, step);
    case 'latency':
      return latency(job, step);
    case 'calibrate':
      return calibrate(job, step);
  }
}
