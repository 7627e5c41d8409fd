import { fork, type ChildProcess } from 'node:child_process';
import { basename } from 'node:path';
import type { TensorSpec } from '../../runtime/artifact/index.js';
import type { BackendName, TensorValue } from '../../runtime/backends/index.js';
import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { Feeds } from '../../runtime/model/index.js';
import type { AccuracyFigures } from './metrics.js';
import type {
  CalibrateResult,
  EvaluatorJob,
  JobResults,
  ParentMessage,
  ProbeResult,
  WorkerMessage,
} from './protocol.js';
import { describeSample, peakResidentBytes, workerEntry, defaultRunBudget, type RunBudget } from './process.js';

export { RUN_BUDGET_DEFAULTS, defaultRunBudget, describeSample, type RunBudget } from './process.js';

/**
 * Every model run the compiler makes — the original's reference outputs, grading each variant, probing whether the
 * original accepts an input, latency, calibration — happens in one evaluator process (worker.ts), and each run is
 * held to a budget: wall time per run and the process's resident memory. A run past either is killed (SIGKILL: a
 * native ONNX Runtime call cannot be interrupted any other way, and onnxruntime-node runs synchronously) and ends in
 * `EVALUATION_BUDGET_EXCEEDED` naming the model, the sample and its integer inputs, so no compile hangs or takes the
 * machine down; the next job starts a fresh process. Memory is read from /proc (Linux); elsewhere only time is
 * bounded.
 */
const log = logger('compiler.evaluate');

const MEMORY_POLL_MS = 50;
/**
 * How long a fresh evaluator process may take to start (Node, the module graph, onnxruntime) before its first job's
 * budget starts: start-up is not a run, and on a loaded machine it alone can outlast a small per-run budget.
 */
const STARTUP_SECONDS = 120;
const STDERR_KEPT = 2048; // bytes of the worker's stderr kept for a crash's reason

/** The fp32 original's outputs on the held-out samples: computed once, compared against every variant. */
export interface Reference {
  readonly id: string;
  readonly samples: readonly Feeds[];
  readonly outputs: readonly Readonly<Record<string, TensorValue>>[];
  readonly specs: readonly TensorSpec[];
}

export interface EvaluatorOptions {
  readonly budget?: RunBudget;
  /** Each run as it starts: `stage` names the job (e.g. "grade int8"). */
  readonly onProgress?: (stage: string, done: number, total: number) => void;
}

/**
 * A worker still holding more than this after a job is replaced before the next: the memory a large model's
 * sessions leave behind (allocator caches, a WASM heap that never shrinks) would otherwise add up across jobs.
 */
const RECYCLE_BYTES = 768 * 2 ** 20;

interface Pending {
  readonly id: number;
  readonly job: EvaluatorJob;
  readonly stage: string;
  readonly samples: readonly Feeds[];
  readonly progress: boolean;
  sample: number;
  /** The runs the worker last said the job makes. */
  total: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Worker {
  readonly process: ChildProcess;
  readonly refs: Set<string>;
  stderr: string;
  /** The process said `ready`: its jobs' runs are timed from now on (before, only its start-up limit applies). */
  ready: boolean;
}

export class Evaluator {
  readonly budget: RunBudget;
  private worker: Worker | undefined;
  private pending: Pending | undefined;
  private timer: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private nextId = 1;
  private refs = 0;
  private closed = false;

  constructor(private readonly options: EvaluatorOptions = {}) {
    this.budget = options.budget ?? defaultRunBudget();
  }

  /**
   * Runs the original on `samples` and keeps its outputs for grading. A sample it rejects fails the call, or with
   * `skipFailures` is left out of the reference (and listed in `failed`).
   */
  async reference(
    model: string,
    samples: readonly Feeds[],
    options: { stage?: string; skipFailures?: boolean } = {},
  ): Promise<Reference & { failed: readonly { index: number; error: string }[] }> {
    const id = `ref${this.refs++}`;
    const job = { kind: 'reference' as const, ref: id, model, samples, skipFailures: options.skipFailures === true };
    const result = await this.run(job, options.stage ?? 'reference', samples);
    const reference: Reference = {
      id,
      samples: result.accepted.map((i) => samples[i] ?? {}),
      outputs: result.outputs,
      specs: result.specs,
    };
    this.worker?.refs.add(id);
    return { ...reference, failed: result.failed };
  }

  async accuracy(
    model: string,
    ref: Reference,
    backend: BackendName = 'native',
    stage = 'grade',
    /** Report this job's runs to onProgress (off for the many small gradings of a search that reports itself). */
    progress = true,
  ): Promise<AccuracyFigures> {
    await this.adopt(ref);
    return this.run({ kind: 'accuracy', ref: ref.id, model, backend }, stage, ref.samples, progress);
  }

  probe(model: string, samples: readonly Feeds[], stage = 'probe inputs'): Promise<ProbeResult> {
    return this.run({ kind: 'probe', model, samples }, stage, samples);
  }

  async latencyP50(model: string, sample: Feeds, stage = 'benchmark', iterations = 100): Promise<number> {
    const result = await this.run({ kind: 'latency', model, sample, warmup: 10, iterations }, stage, [sample]);
    return result.p50;
  }

  calibrate(
    job: Omit<Extract<EvaluatorJob, { kind: 'calibrate' }>, 'kind'>,
    stage = 'calibrate',
  ): Promise<CalibrateResult> {
    return this.run({ kind: 'calibrate', ...job }, stage, job.samples);
  }

  /** Ends the worker (killed if it is in the middle of a run). Idempotent. */
  close(): void {
    this.closed = true;
    const pending = this.pending;
    this.finish();
    this.worker?.process.kill('SIGKILL');
    this.worker = undefined;
    pending?.reject(new OutpostError('INTERNAL', `${pending.stage}: the evaluator was closed`));
  }

  private async adopt(ref: Reference): Promise<void> {
    if (this.worker?.refs.has(ref.id) === true) return;
    const { id, samples, outputs, specs } = ref;
    await this.run({ kind: 'adopt', ref: id, samples, outputs, specs }, 'reference', []);
    this.worker?.refs.add(id);
  }

  private spawn(): Worker {
    const entry = workerEntry();
    const child = fork(entry.path, [], {
      execArgv: entry.execArgv,
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const worker: Worker = { process: child, refs: new Set(), stderr: '', ready: false };
    child.stderr?.on('data', (chunk: Buffer) => {
      worker.stderr = (worker.stderr + chunk.toString('utf8')).slice(-STDERR_KEPT);
    });
    child.on('message', (message: WorkerMessage) => this.onMessage(worker, message));
    child.on('exit', (code, signal) => this.onExit(worker, code, signal));
    log.debug({ pid: child.pid, entry: entry.path }, 'evaluator started');
    return worker;
  }

  private run<K extends EvaluatorJob['kind']>(
    job: Extract<EvaluatorJob, { kind: K }>,
    stage: string,
    samples: readonly Feeds[],
    progress = true,
  ): Promise<JobResults[K]> {
    if (this.closed) return Promise.reject(new OutpostError('INTERNAL', 'the evaluator was closed'));
    if (this.pending !== undefined)
      return Promise.reject(new OutpostError('INTERNAL', 'evaluator jobs run one at a time'));
    const worker = (this.worker ??= this.spawn());
    const id = this.nextId++;
    return new Promise<JobResults[K]>((resolve, reject) => {
      this.pending = { id, job, stage, samples, progress, sample: -1, total: samples.length, resolve: resolve, reject };
      if (worker.ready) this.arm();
      else this.armStartup();
      this.poll = setInterval(() => this.overMemory(), MEMORY_POLL_MS);
      worker.process.send({ id, job } satisfies ParentMessage);
    });
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.exceeded(`ran past its ${this.budget.seconds} s budget`),
      this.budget.seconds * 1000,
    );
  }

  /** A fresh process gets STARTUP_SECONDS to say `ready`; its job's budget is armed then (onMessage). */
  private armStartup(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.exceeded(`did not start within ${STARTUP_SECONDS} s`), STARTUP_SECONDS * 1000);
  }

  private stop(): void {
    clearTimeout(this.timer);
    clearInterval(this.poll);
    this.timer = undefined;
    this.poll = undefined;
  }

  /** True (and the job failed) when the worker's peak memory passed the budget. */
  private overMemory(): boolean {
    const pid = this.worker?.process.pid;
    if (pid === undefined || this.pending === undefined) return false;
    const peak = peakResidentBytes(pid);
    if (peak === undefined || peak <= this.budget.memoryBytes) return false;
    const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
    this.exceeded(`reached ${mib(peak)} of memory, past its ${mib(this.budget.memoryBytes)} budget,`);
    return true;
  }

  /** Kills the worker mid-run and fails the job, naming the run. */
  private exceeded(what: string): void {
    const pending = this.pending;
    const worker = this.worker;
    if (pending === undefined || worker === undefined) return;
    this.finish();
    this.worker = undefined;
    worker.process.kill('SIGKILL');
    const model = 'model' in pending.job ? basename(pending.job.model) : 'the evaluator';
    // A benchmark's runs all take its one sample.
    const feeds = pending.job.kind === 'latency' ? pending.samples[0] : pending.samples[pending.sample];
    const where = describeSample(pending.sample, feeds);
    pending.reject(
      new OutpostError('EVALUATION_BUDGET_EXCEEDED', `${pending.stage}: ${model} ${what} on ${where}`, {
        details: { stage: pending.stage, model, sample: pending.sample, budget: this.budget },
      }),
    );
  }

  private finish(): void {
    this.stop();
    this.pending = undefined;
  }

  private onMessage(worker: Worker, message: WorkerMessage): void {
    const pending = this.pending;
    if (message.type === 'ready') {
      worker.ready = true;
      // The job sent while it started is timed from here, unless it already reported a step (which re-armed).
      if (pending !== undefined && this.worker === worker && pending.sample === -1) this.arm();
      return;
    }
    if (pending === undefined || message.id !== pending.id) return;
    // A run that ended between two polls is judged on the peak it reached before its result is taken.
    if (this.overMemory()) return;
    if (message.type === 'step') {
      pending.sample = message.sample;
      if (message.total > 0) pending.total = message.total;
      this.arm();
      if (message.sample >= 0 && pending.progress)
        this.options.onProgress?.(pending.stage, message.sample, message.total);
      return;
    }
    this.finish();
    this.recycleIfLarge();
    if (message.type === 'result') {
      if (pending.total > 0 && pending.progress) this.options.onProgress?.(pending.stage, pending.total, pending.total);
      pending.resolve(message.value);
    } else {
      pending.reject(new OutpostError(message.code, message.message, { details: message.details }));
    }
  }

  private recycleIfLarge(): void {
    const worker = this.worker;
    const pid = worker?.process.pid;
    if (worker === undefined || pid === undefined) return;
    const rss = peakResidentBytes(pid, 'VmRSS');
    if (rss === undefined || rss <= RECYCLE_BYTES) return;
    log.debug({ pid, rss }, 'evaluator recycled');
    this.worker = undefined;
    worker.process.kill('SIGKILL');
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.worker !== worker) return; // killed on purpose: the job has been failed already
    this.worker = undefined;
    const pending = this.pending;
    if (pending === undefined) return;
    this.finish();
    const where = describeSample(pending.sample, pending.samples[pending.sample]);
    const tail = worker.stderr.trim().split('\n').slice(-3).join(' ');
    pending.reject(
      new OutpostError(
        'INFERENCE_FAILED',
        `${pending.stage}: the evaluator process died (${signal ?? `exit ${code ?? '?'}`}) on ${where}${tail === '' ? '' : `: ${tail}`}`,
        { details: { stage: pending.stage, sample: pending.sample, signal, code } },
      ),
    );
  }
}
