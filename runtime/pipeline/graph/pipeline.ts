import { OutpostError, messageOf } from '../../errors.js';
import type { Manifest, TensorSpec } from '../../artifact/manifest.js';
import type { TensorValue } from '../../backends/types.js';
import type { Model } from '../../model/model.js';
import { InputValidator } from '../../model/validate.js';
import type { TensorLike } from '../../tensor/tensor.js';
import type { TransformRun } from '../transforms/index.js';
import { runBatched } from './batch.js';
import type { Plan } from './plan.js';

export interface PipelineRun {
  /** The pipeline's outputs, by the names `cascade.outputs` gives them. */
  readonly outputs: Record<string, TensorValue>;
  /** Milliseconds spent in each step, by step id, in the order they ran. */
  readonly timings: Record<string, number>;
}

export interface StepInfo {
  readonly id: string;
  readonly kind: 'transform' | 'model';
  /** The transform's op, or the model's key in `cascade.models`. */
  readonly what: string;
  readonly batch?: number;
}

export interface PipelineInit {
  readonly manifest: Manifest;
  /** The verified artifact's directory (an archive's extracted copy): its files, e.g. the recorded test vectors. */
  readonly dir: string;
  readonly plan: Plan;
  readonly models: Readonly<Record<string, Model>>;
  readonly transforms: Readonly<Record<string, TransformRun>>;
  readonly dispose: () => Promise<void>;
}

/**
 * A loaded pipeline: its models in their backend sessions, its transforms bound to their parameters, and the plan
 * that orders them. `run()` feeds each step the tensors its mapping names, in plan order, and returns the pipeline's
 * outputs with each step's time. One bad request fails that request only (a typed error naming the step); nothing
 * is shared between calls except the models, which take concurrent calls.
 */
export class Pipeline {
  readonly name: string;
  readonly version: string;
  readonly manifest: Manifest;
  /** Where the verified artifact's files are read from until release() (an archive's extracted copy). */
  readonly dir: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly steps: readonly StepInfo[];
  readonly models: Readonly<Record<string, Model>>;
  private readonly plan: Plan;
  private readonly transforms: Readonly<Record<string, TransformRun>>;
  private readonly validator: InputValidator;
  private readonly dispose: () => Promise<void>;
  private releasing: Promise<void> | undefined;

  constructor(init: PipelineInit) {
    this.manifest = init.manifest;
    this.dir = init.dir;
    this.name = init.manifest.name;
    this.version = init.manifest.version;
    this.inputs = init.manifest.inputs;
    this.outputs = init.plan.outputs;
    this.plan = init.plan;
    this.models = init.models;
    this.transforms = init.transforms;
    this.dispose = init.dispose;
    this.validator = new InputValidator(this.inputs);
    this.steps = Object.freeze(
      init.plan.steps.map((p) => ({
        id: p.step.id,
        kind: p.kind,
        what: p.kind === 'model' ? p.model : p.transform.op,
        ...(p.step.batch === undefined ? {} : { batch: p.step.batch }),
      })),
    );
  }

  async run(feeds: Readonly<Record<string, TensorLike>>): Promise<PipelineRun> {
    if (this.releasing !== undefined)
      throw new OutpostError('MODEL_RELEASED', `pipeline ${this.name}@${this.version} was released`);
    this.validator.check(feeds);
    const values = new Map<string, TensorValue>();
    for (const spec of this.inputs) {
      const feed = feeds[spec.name] as TensorLike;
      values.set(`inputs.${spec.name}`, { type: feed.type ?? spec.dtype, data: feed.data, dims: feed.dims });
    }
    const timings: Record<string, number> = {};
    for (const planned of this.plan.steps) {
      const { step } = planned;
      const inputs: Record<string, TensorValue> = {};
      for (const [name, ref] of Object.entries(step.inputs)) inputs[name] = values.get(ref) as TensorValue;
      const started = performance.now();
      let out: Record<string, TensorValue>;
      try {
        if (planned.kind === 'transform') {
          out = await (this.transforms[step.id] as TransformRun)(inputs);
        } else {
          const model = this.models[planned.model] as Model;
          out =
            step.batch === undefined ? await model.infer(inputs) : await runBatched(model, inputs, step.batch, step.id);
        }
      } catch (error) {
        throw stepError(step.id, error);
      }
      timings[step.id] = performance.now() - started;
      for (const [name, value] of Object.entries(out)) values.set(`${step.id}.${name}`, value);
    }
    const outputs: Record<string, TensorValue> = {};
    for (const [name, ref] of Object.entries(this.manifest.cascade?.outputs ?? {}))
      outputs[name] = values.get(ref) as TensorValue;
    return { outputs, timings };
  }

  /** Releases every model (after in-flight calls) and what opening created. Idempotent. */
  release(): Promise<void> {
    this.releasing ??= (async () => {
      await Promise.all(Object.values(this.models).map((m) => m.release()));
      await this.dispose();
    })();
    return this.releasing;
  }
}

/** The step's own typed error, with the step named first; anything untyped becomes INFERENCE_FAILED. */
function stepError(step: string, error: unknown): OutpostError {
  if (error instanceof OutpostError) {
    return new OutpostError(error.code, `step "${step}": ${error.message}`, {
      cause: error,
      retryable: error.retryable,
      details: { ...error.details, step },
    });
  }
  return new OutpostError('INFERENCE_FAILED', `step "${step}": ${messageOf(error)}`, {
    cause: error,
    details: { step },
  });
}
