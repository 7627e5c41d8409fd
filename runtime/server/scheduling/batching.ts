import { OutpostError, messageOf } from '../../errors.js';
import { logger } from '../../log.js';
import type { Feeds, Model, Outputs } from '../../model/model.js';
import type { TensorLike } from '../../tensor/tensor.js';
import { batchProblem, RowBuffers, splitRows, type Concatenated } from './rows.js';
import { cancelled, DirectScheduler, RETRY_AFTER_SECONDS, type Scheduler, type SchedulerFactory } from './direct.js';

export { batchProblem } from './rows.js';

const log = logger('server.batcher');

/** One batch as it starts running: what the metrics' batch-size histogram records. */
export interface BatchEvent {
  readonly name: string;
  readonly version: string;
  /** Rows in the batch: the sum of its requests' first dimensions. */
  readonly rows: number;
  readonly requests: number;
}

export interface BatchObserver {
  /** Called once per batch as it starts; must not throw or block. */
  onBatch(event: BatchEvent): void;
}

export interface BatchingOptions {
  /** Rows (not requests) per batch; a request with more rows than this runs alone. */
  readonly maxBatchSize: number; // rows
  /** Longest the oldest request of a forming batch waits for company before the batch runs as it is. */
  readonly maxQueueDelayMs: number; // ms
  /** Batches running at once on this model (requests at once when the model falls back to direct scheduling). */
  readonly concurrency: number; // batches
  /** Rows allowed to wait, summed over every forming and due batch; a request that would pass it is OVERLOADED. */
  readonly maxQueue: number; // rows
  /** First-axis symbols taken to mean "batch" besides BATCH_SYMBOLS and names containing "batch". */
  readonly batchSymbols?: readonly string[];
  readonly observer?: BatchObserver;
}

export const DEFAULT_BATCHING = Object.freeze({
  maxBatchSize: 8, // rows: a modest default; tune it per model against p99 with a load test
  maxQueueDelayMs: 0, // ms: none: batches form from what queues while the model is busy (Triton's default)
  concurrency: 2, // batches: one runs while the next is copied together
  maxQueue: 256, // rows
} satisfies BatchingOptions);

interface Pending {
  readonly feeds: Feeds;
  /** The caller went away: dropped when its batch starts, without running. */
  readonly signal: AbortSignal | undefined;
  readonly rows: number;
  readonly resolve: (outputs: Outputs) => void;
  readonly reject: (error: Error) => void;
}

/** Requests of one shape signature that will run together. */
interface Batch {
  readonly key: string;
  readonly requests: Pending[];
  rows: number;
  /** Full or past its delay: waiting in `due` for a free slot (it may still take rows while it waits). */
  due: boolean;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Dynamic batching (Triton's dynamic batcher, on the device): requests that arrive close together run as one batch,
 * concatenated along axis 0, and each caller gets back its own rows. A batch runs when it holds maxBatchSize rows or
 * its oldest request has waited maxQueueDelayMs, whichever comes first, as soon as one of `concurrency` slots is
 * free. Requests are validated on arrival, so a bad one fails alone; requests whose non-batch dimensions differ
 * never share a batch.
 */
export class BatchingScheduler implements Scheduler {
  /** The forming batch per shape signature. */
  private readonly open = new Map<string, Batch>();
  /** Batches ready to run, oldest first. */
  private readonly due: Batch[] = [];
  private readonly buffers: RowBuffers;
  private readonly batchInput: string;
  /** Every input's non-batch dims are fixed, so all requests share one signature and none is computed. */
  private readonly oneShape: boolean;
  private waitingRows = 0;
  private waitingRequests = 0;
  private runningRequests = 0;
  private activeBatches = 0;
  private closed = false;
  private readonly idle: (() => void)[] = [];

  constructor(
    private readonly model: Model,
    private readonly options: BatchingOptions = DEFAULT_BATCHING,
  ) {
    const problem = batchProblem(model, options.batchSymbols);
    if (problem !== undefined) {
      throw new OutpostError('INVALID_ARGUMENT', `${model.name}@${model.version} cannot be batched: ${problem}`);
    }
    this.batchInput = (model.inputs[0] as { name: string }).name;
    this.oneShape = model.inputs.every((input) => input.shape.slice(1).every((d) => typeof d === 'number'));
    this.buffers = new RowBuffers(model.inputs, options.maxBatchSize, options.concurrency);
  }

  /** Requests waiting (forming or due batches). */
  get queued(): number {
    return this.waitingRequests;
  }

  /** Rows waiting: what `maxQueue` bounds. */
  get queuedRows(): number {
    return this.waitingRows;
  }

  /** Requests in running batches. */
  get running(): number {
    return this.runningRequests;
  }

  run(feeds: Feeds, signal?: AbortSignal): Promise<Outputs> {
    if (this.closed) return Promise.reject(this.closedError());
    if (signal?.aborted === true) return Promise.reject(cancelled(this.model));
    try {
      this.model.check(feeds);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new OutpostError('INTERNAL', messageOf(error)));
    }
    const rows = (feeds[this.batchInput] as TensorLike).dims[0] as number;
    // A lone request larger than the whole queue is still admitted when nothing waits: refusing it would refuse it forever.
    if (this.waitingRows > 0 && this.waitingRows + rows > this.options.maxQueue) {
      return Promise.reject(this.overloaded());
    }
    return new Promise<Outputs>((resolve, reject) => this.enqueue({ feeds, signal, rows, resolve, reject }));
  }

  private enqueue(request: Pending): void {
    const { maxBatchSize, maxQueueDelayMs } = this.options;
    this.waitingRows += request.rows;
    this.waitingRequests++;
    const key = this.oneShape ? '' : this.signature(request.feeds);
    let batch = this.open.get(key);
    if (batch !== undefined && batch.rows + request.rows > maxBatchSize) {
      this.markDue(batch, true); // it cannot take these rows: it runs as it is and a new batch starts (FIFO kept)
      batch = undefined;
    }
    if (batch === undefined) {
      batch = { key, requests: [], rows: 0, due: false, timer: undefined };
      this.open.set(key, batch);
      // No delay: due at once, yet open to more rows until a slot takes it, so an idle model answers a lone
      // request without waiting and a busy one gathers what arrives meanwhile.
      if (maxQueueDelayMs > 0) batch.timer = setTimeout(this.expire, maxQueueDelayMs, batch);
      else this.markDue(batch, false);
    }
    batch.requests.push(request);
    batch.rows += request.rows;
    if (batch.rows >= maxBatchSize) this.markDue(batch, true);
    this.pump();
  }

  /** The non-batch dims of every input: requests with different ones cannot be concatenated. */
  private signature(feeds: Feeds): string {
    let key = '';
    for (const input of this.model.inputs) {
      const dims = (feeds[input.name] as TensorLike).dims;
      for (let axis = 1; axis < dims.length; axis++) key += `${dims[axis] as number},`;
      key += '|';
    }
    return key;
  }

  private readonly expire = (batch: Batch): void => {
    batch.timer = undefined;
    this.markDue(batch, false);
    this.pump();
  };

  /** Queues `batch` to run; a full one also stops taking requests. */
  private markDue(batch: Batch, full: boolean): void {
    if (full && this.open.get(batch.key) === batch) this.open.delete(batch.key);
    if (batch.timer !== undefined) {
      clearTimeout(batch.timer);
      batch.timer = undefined;
    }
    if (!batch.due) {
      batch.due = true;
      this.due.push(batch);
    }
  }

  private pump(): void {
    while (this.activeBatches < this.options.concurrency) {
      const batch = this.due.shift();
      if (batch === undefined) return;
      this.start(batch);
    }
  }

  private start(batch: Batch): void {
    if (this.open.get(batch.key) === batch) this.open.delete(batch.key);
    this.waitingRows -= batch.rows;
    this.waitingRequests -= batch.requests.length;
    this.dropCancelled(batch);
    const requests = batch.requests.length;
    if (requests === 0) return;
    this.activeBatches++;
    this.runningRequests += requests;
    if (this.options.observer !== undefined) {
      try {
        this.options.observer.onBatch({
          name: this.model.name,
          version: this.model.version,
          rows: batch.rows,
          requests,
        });
      } catch (error) {
        log.warn({ error }, 'batch observer failed');
      }
    }
    void this.execute(batch);
  }

  /** Rejects the requests whose callers went away while they waited, and takes their rows out of the batch. */
  private dropCancelled(batch: Batch): void {
    if (!batch.requests.some((r) => r.signal?.aborted === true)) return;
    const live = batch.requests.filter((r) => r.signal?.aborted !== true);
    for (const r of batch.requests) if (r.signal?.aborted === true) r.reject(cancelled(this.model));
    batch.requests.splice(0, batch.requests.length, ...live);
    batch.rows = live.reduce((n, r) => n + r.rows, 0);
  }

  /** Runs one batch and settles every request in it; never rejects. */
  private async execute(batch: Batch): Promise<void> {
    const { requests } = batch;
    let concatenated: Concatenated | undefined;
    try {
      if (requests.length === 1) {
        // Nothing to merge: the request's own feeds go through untouched and its outputs come back whole.
        const only = requests[0] as Pending;
        only.resolve(await this.model.infer(only.feeds));
      } else {
        concatenated = this.buffers.concat(requests, batch.rows);
        const results = splitRows(await this.model.infer(concatenated.feeds), requests, batch.rows);
        for (let i = 0; i < requests.length; i++) (requests[i] as Pending).resolve(results[i] as Outputs);
      }
    } catch (error) {
      const failure = error instanceof Error ? error : new OutpostError('INFERENCE_FAILED', messageOf(error));
      for (const request of requests) request.reject(failure);
    } finally {
      // The run has finished reading the inputs, and outputs never alias them: the buffers can serve the next batch.
      if (concatenated !== undefined) this.buffers.release(concatenated);
      this.activeBatches--;
      this.runningRequests -= requests.length;
      if (this.activeBatches === 0) for (const wake of this.idle.splice(0)) wake();
      this.pump();
    }
  }

  private overloaded(): OutpostError {
    const { name, version } = this.model;
    const { maxQueue } = this.options;
    return new OutpostError(
      'OVERLOADED',
      `model ${name}@${version} is at capacity (${this.waitingRows} of ${maxQueue} rows queued in ${this.waitingRequests} requests); retry after ${RETRY_AFTER_SECONDS} s`,
      {
        retryable: true,
        details: {
          model: name,
          version,
          queued: this.waitingRequests,
          queuedRows: this.waitingRows,
          maxQueueRows: maxQueue,
          retryAfterSeconds: RETRY_AFTER_SECONDS,
        },
      },
    );
  }

  private closedError(): OutpostError {
    // MODEL_RELEASED maps to 503: the version is leaving service; a retry reaches whichever version serves next.
    const { name, version } = this.model;
    return new OutpostError('MODEL_RELEASED', `model ${name}@${version} stopped serving before this request ran`, {
      retryable: true,
      details: { model: name, version, retryAfterSeconds: RETRY_AFTER_SECONDS },
    });
  }

  /** Refuses new requests, rejects waiting ones (MODEL_RELEASED, retryable) and resolves once running batches end. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      const waiting = new Set([...this.due, ...this.open.values()]);
      this.due.length = 0;
      this.open.clear();
      this.waitingRows = 0;
      this.waitingRequests = 0;
      const error = this.closedError();
      for (const batch of waiting) {
        if (batch.timer !== undefined) clearTimeout(batch.timer);
        for (const request of batch.requests) request.reject(error);
      }
    }
    while (this.activeBatches > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }
}

/**
 * A scheduler factory like `directScheduler`: batching for models that batch along axis 0 (see batchProblem), the
 * direct scheduler with the same concurrency and queue bound for the rest.
 */
export function batchingScheduler(options: Partial<BatchingOptions> = {}): SchedulerFactory {
  const resolved: BatchingOptions = { ...DEFAULT_BATCHING, ...options };
  const { maxBatchSize, maxQueueDelayMs, concurrency, maxQueue } = resolved;
  const counts = { maxBatchSize, concurrency, maxQueue };
  for (const [name, value] of Object.entries(counts)) {
    if (!Number.isInteger(value) || value < 1)
      throw new OutpostError('INVALID_ARGUMENT', `batching ${name} must be an integer ≥ 1, got ${value}`);
  }
  if (!Number.isFinite(maxQueueDelayMs) || maxQueueDelayMs < 0) {
    throw new OutpostError('INVALID_ARGUMENT', `batching maxQueueDelayMs must be ≥ 0 ms, got ${maxQueueDelayMs}`);
  }
  return (model) => {
    const problem = batchProblem(model, resolved.batchSymbols);
    if (problem === undefined) return new BatchingScheduler(model, resolved);
    log.debug({ model: model.name, version: model.version, reason: problem }, 'not batching: scheduling directly');
    return new DirectScheduler(model, { concurrency, maxQueue });
  };
}
