import { OutpostError, messageOf } from '../errors.js';
import type { Manifest, TensorSpec, Variant } from '../artifact/manifest.js';
import type { BackendName, BackendSession, TensorValue } from '../backends/types.js';
import type { TensorLike } from '../tensor/tensor.js';
import { bindShape, InputValidator } from './validate.js';

export type Feeds = Readonly<Record<string, TensorLike>>;
export type Outputs = Record<string, TensorValue>;

export interface ModelInit {
  readonly manifest: Manifest;
  /** True when the manifest was synthesised from a plain model file rather than read from a verified artifact. */
  readonly synthesized: boolean;
  readonly variant: Variant;
  /** The model file the session was created from. */
  readonly file: string;
  /** The verified artifact directory, for artifacts (test vectors, labels live there). */
  readonly artifactDir: string | undefined;
  readonly session: BackendSession;
  readonly fallbackReason: string | undefined;
  readonly bindings: Readonly<Record<string, number>>;
  readonly loadMs: number;
  /** Runs when the model is released: removes a temporary unpack directory. */
  readonly dispose?: () => Promise<void>;
}

/**
 * A loaded model: one variant of one artifact in one backend session. `infer()` is the product's hot path: it
 * validates feeds against the manifest, wraps them (no copy) and runs; nothing is logged or allocated per call
 * beyond the feed wrappers and ONNX Runtime's outputs.
 */
export class Model {
  readonly name: string;
  readonly version: string;
  readonly manifest: Manifest;
  readonly synthesized: boolean;
  readonly variant: Variant;
  /** The variant's model file on disk (inside the verified artifact). */
  readonly file: string;
  /** The verified artifact directory; undefined for a plain model file. */
  readonly artifactDir: string | undefined;
  /** The backend serving this model. */
  readonly backend: BackendName;
  /** Why a preferred backend was passed over, when one was. */
  readonly fallbackReason: string | undefined;
  /** Inputs and outputs with symbolic dims bound where the load options bound them. */
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly loadMs: number;
  /** Symbol bindings given at load (`dims`, `shapes`). */
  readonly bindings: Readonly<Record<string, number>>;

  private session: BackendSession | undefined;
  private readonly validator: InputValidator;
  private readonly specs: readonly TensorSpec[];
  private readonly dispose: (() => Promise<void>) | undefined;
  private inflight = 0;
  /** Set while `release` waits for in-flight calls: the last one to finish calls it. */
  private drained: (() => void) | undefined;
  private releasing: Promise<void> | undefined;

  constructor(init: ModelInit) {
    this.manifest = init.manifest;
    this.name = init.manifest.name;
    this.version = init.manifest.version;
    this.synthesized = init.synthesized;
    this.variant = init.variant;
    this.file = init.file;
    this.artifactDir = init.artifactDir;
    this.session = init.session;
    this.backend = init.session.backend;
    this.fallbackReason = init.fallbackReason;
    this.loadMs = init.loadMs;
    this.bindings = Object.freeze({ ...init.bindings });
    this.dispose = init.dispose;
    const bind = (spec: TensorSpec): TensorSpec => ({ ...spec, shape: bindShape(spec.shape, init.bindings) });
    this.inputs = Object.freeze(init.manifest.inputs.map(bind));
    this.outputs = Object.freeze(init.manifest.outputs.map(bind));
    this.specs = this.inputs;
    this.validator = new InputValidator(this.inputs);
  }

  /** Validates feeds as `infer` would, without running: schedulers check each request before batching it. */
  check(feeds: Feeds): void {
    this.validator.check(feeds);
  }

  infer(feeds: Feeds): Promise<Outputs> {
    const session = this.session;
    try {
      if (session === undefined)
        throw new OutpostError('MODEL_RELEASED', `model ${this.name}@${this.version} was released`);
      this.validator.check(feeds);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new OutpostError('INTERNAL', messageOf(error)));
    }
    const wrapped: Record<string, TensorValue> = {};
    for (const spec of this.specs) {
      const feed = feeds[spec.name] as TensorLike;
      wrapped[spec.name] = session.tensor(spec.dtype, feed.data, feed.dims);
    }
    this.inflight++;
    // One promise reaction for both outcomes: the hot path's only cost over a raw ONNX Runtime call.
    return session.run(wrapped).then(this.succeeded, this.failed);
  }

  private readonly succeeded = (outputs: Outputs): Outputs => {
    if (--this.inflight === 0) this.drained?.();
    return outputs;
  };

  private readonly failed = (error: unknown): never => {
    if (--this.inflight === 0) this.drained?.();
    throw new OutpostError('INFERENCE_FAILED', `${this.backend} inference failed: ${messageOf(error)}`, {
      cause: error,
    });
  };

  /** Frees the session (after in-flight calls finish) and any temporary files. Idempotent. */
  release(): Promise<void> {
    this.releasing ??= this.doRelease();
    return this.releasing;
  }

  private async doRelease(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    // No call starts once the session is gone, so the count only falls: wait for the last one to finish.
    if (this.inflight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.drained = undefined;
    await session?.release();
    await this.dispose?.();
  }

  get released(): boolean {
    return this.session === undefined;
  }
}
