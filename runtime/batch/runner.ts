import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fromFsError } from '../errors.js';
import type { Model } from '../model/model.js';
import { postprocess } from '../pipeline/index.js';
import { DEFAULT_BATCHING, batchingScheduler } from '../server/scheduling/batching.js';
import type { Scheduler } from '../server/scheduling/direct.js';
import { tensorToJson } from '../tensor/index.js';
import { decodeItem } from './decode.js';
import type { BatchItem } from './sources.js';

/** A tensor as a batch output line carries it (the Open Inference Protocol's JSON tensor, without the name). */
export type JsonTensor = ReturnType<typeof tensorToJson>;

/** What one input produced: its outputs by name, and the artifact's post-processing (top-k labels, argmax). */
export interface BatchResult {
  readonly outputs: Readonly<Record<string, JsonTensor>>;
  readonly postprocess?: {
    readonly output: string;
    readonly argmax?: number;
    readonly top?: readonly { index: number; score: number; label?: string }[];
  };
}

/**
 * Something that runs the inputs of a batch, many at once: a model (ModelRunner, below), or a pipeline (the runner
 * the pipeline work adds behind the same contract). `run` decodes and runs one item and rejects with that item's
 * typed error; calls overlap (up to the transform's window), and the runner batches them as it sees fit.
 */
export interface BatchRunner {
  /** What is running, for the summary and logs. */
  readonly subject: {
    readonly name: string;
    readonly version: string;
    readonly variant?: string;
    readonly backend?: string;
  };
  /** Items worth keeping in flight at once for this runner to form full batches. */
  readonly window: number;
  run(item: BatchItem): Promise<BatchResult>;
  /** Model runs so far and the inputs they carried (runs < inputs: batching happened). */
  readonly runs: { readonly runs: number; readonly inputs: number };
  close(): Promise<void>;
}

export interface ModelRunnerOptions {
  /** Rows per batch; inputs of one row each make batches of this many inputs. */
  readonly maxBatchSize?: number; // rows
  /** Batches running at once. */
  readonly concurrency?: number; // batches
  /** `--input-shape`: shapes for flat tensor data. */
  readonly shapes?: Readonly<Record<string, readonly number[]>>;
}

export const RUNNER_DEFAULTS = Object.freeze({
  maxBatchSize: DEFAULT_BATCHING.maxBatchSize, // rows
  concurrency: DEFAULT_BATCHING.concurrency, // batches: one runs while the next is gathered and copied together
} satisfies ModelRunnerOptions);

async function labelsOf(model: Model): Promise<string[] | undefined> {
  const file = model.manifest.pipeline.labels;
  if (file === undefined || model.artifactDir === undefined) return undefined;
  const path = join(model.artifactDir, file);
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  return text.split('\n').filter((l) => l.length > 0);
}

/**
 * A loaded model behind the server's dynamic batcher (runtime/server/scheduling/batching.ts): items decoded
 * concurrently join batches of up to maxBatchSize rows, each caller gets its own rows back; a model without a batch
 * axis runs them one by one (`concurrency` at once). A bad item is rejected on arrival and never joins a batch.
 */
export class ModelRunner implements BatchRunner {
  readonly subject: BatchRunner['subject'];
  readonly window: number;

  private constructor(
    private readonly model: Model,
    private readonly scheduler: Scheduler,
    private readonly labels: readonly string[] | undefined,
    private readonly shapes: Readonly<Record<string, readonly number[]>>,
    options: Required<Omit<ModelRunnerOptions, 'shapes'>>,
    /** Filled by the batcher's observer; a model scheduled directly (no batch axis) leaves it at zero. */
    readonly runs: { runs: number; inputs: number },
  ) {
    this.subject = { name: model.name, version: model.version, variant: model.variant.id, backend: model.backend };
    // Enough decoded items waiting that the next batch is full when a slot frees, plus the ones being decoded.
    this.window = options.maxBatchSize * (options.concurrency + 1) * 2;
  }

  static async open(model: Model, options: ModelRunnerOptions = {}): Promise<ModelRunner> {
    const resolved = {
      maxBatchSize: options.maxBatchSize ?? RUNNER_DEFAULTS.maxBatchSize,
      concurrency: options.concurrency ?? RUNNER_DEFAULTS.concurrency,
    };
    // The transform's window already bounds what waits; the batcher's own row bound would only refuse items.
    const runs = { runs: 0, inputs: 0 };
    const observer = {
      onBatch: (event: { requests: number }) => {
        runs.runs++;
        runs.inputs += event.requests;
      },
    };
    const scheduler = batchingScheduler({
      ...resolved,
      maxQueueDelayMs: 0,
      maxQueue: Number.MAX_SAFE_INTEGER,
      observer,
    })(model);
    return new ModelRunner(model, scheduler, await labelsOf(model), options.shapes ?? {}, resolved, runs);
  }

  async run(item: BatchItem): Promise<BatchResult> {
    const feeds = await decodeItem(item, this.model, this.shapes);
    const outputs = await this.scheduler.run(feeds);
    const first = this.model.outputs[0]?.name ?? '';
    const post = postprocess(this.model.manifest.pipeline.postprocess, outputs, first, this.labels);
    return {
      outputs: Object.fromEntries(Object.entries(outputs).map(([name, tensor]) => [name, tensorToJson(tensor)])),
      ...(post === undefined
        ? {}
        : {
            postprocess: {
              output: post.output,
              ...(post.argmax === undefined ? {} : { argmax: post.argmax }),
              ...(post.top === undefined ? {} : { top: post.top }),
            },
          }),
    };
  }

  /** Waits for running batches; the model itself stays the caller's to release. */
  async close(): Promise<void> {
    await this.scheduler.close();
  }
}
