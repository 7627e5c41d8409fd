import type { TensorSpec } from '../../runtime/artifact/index.js';
import type { BackendName, TensorValue } from '../../runtime/backends/index.js';
import type { ErrorCode } from '../../runtime/errors.js';
import type { Feeds } from '../../runtime/model/index.js';
import type { CalibrationMethod, CalibratorOptions, TensorRange } from '../calibration/calibrators.js';
import type { AccuracyFigures } from './metrics.js';

/**
 * The messages between the compiler and its evaluator process (evaluator.ts ↔ worker.ts), over Node's IPC channel
 * with the `advanced` (structured clone) serialization, so typed arrays travel as they are.
 *
 * Every job names the runs it makes: the worker announces each one (`step`) before it starts, so the parent's
 * watchdog measures each run against the budget and, when it kills the worker, knows which input it was on.
 */
export type EvaluatorJob =
  | {
      readonly kind: 'reference';
      /** Runs `model` on every sample, keeps samples and outputs under `ref`, returns the outputs. */
      readonly ref: string;
      readonly model: string;
      readonly samples: readonly Feeds[];
      /** Leave out the samples the model rejects (synthetic draws) instead of failing on the first. */
      readonly skipFailures: boolean;
    }
  | {
      readonly kind: 'adopt';
      /** Installs a reference computed by an earlier worker (after a restart), without running anything. */
      readonly ref: string;
      readonly samples: readonly Feeds[];
      readonly outputs: readonly Readonly<Record<string, TensorValue>>[];
      readonly specs: readonly TensorSpec[];
    }
  | {
      readonly kind: 'accuracy';
      readonly ref: string;
      readonly model: string;
      readonly backend: BackendName;
    }
  | {
      readonly kind: 'probe';
      /** Runs `model` on each sample and says which ran (and why not): the inputs the original accepts. */
      readonly model: string;
      readonly samples: readonly Feeds[];
    }
  | {
      readonly kind: 'latency';
      readonly model: string;
      readonly sample: Feeds;
      readonly warmup: number;
      readonly iterations: number;
    }
  | {
      readonly kind: 'calibrate';
      /**
       * Copies of the model, each also outputting one group of the activations to calibrate (graph order, bounded
       * in bytes); each is opened in turn and runs every sample. Values ORT does not report as float32 are left out.
       */
      readonly groups: readonly { readonly model: string; readonly tensors: readonly string[] }[];
      /** Float32 graph inputs to observe directly. */
      readonly inputs: readonly string[];
      readonly samples: readonly Feeds[];
      readonly method: CalibrationMethod;
      readonly options: CalibratorOptions;
      readonly threads?: number;
    };

export interface ReferenceResult {
  /** Outputs of the samples that ran, in order (indices in `accepted`). */
  readonly outputs: Readonly<Record<string, TensorValue>>[];
  readonly specs: TensorSpec[];
  readonly accepted: number[];
  /** Samples the model rejected (only with `skipFailures`). */
  readonly failed: { readonly index: number; readonly error: string }[];
}

export type ProbeResult = readonly ({ readonly ok: true } | { readonly ok: false; readonly error: string })[];

export interface CalibrateResult {
  readonly ranges: Map<string, TensorRange>;
  /** Samples whose run failed (synthetic draws the model rejects), by index, with why. */
  readonly failed: readonly { readonly index: number; readonly error: string }[];
  readonly observed: number;
}

export interface JobResults {
  readonly reference: ReferenceResult;
  readonly adopt: undefined;
  readonly accuracy: AccuracyFigures;
  readonly probe: ProbeResult;
  readonly latency: { readonly p50: number; readonly runs: number };
  readonly calibrate: CalibrateResult;
}

export type ParentMessage = { readonly id: number; readonly job: EvaluatorJob };

export type WorkerMessage =
  | { readonly type: 'ready' }
  /** A run (or a session load: `sample` -1) starts: the watchdog's clock restarts. */
  | { readonly type: 'step'; readonly id: number; readonly sample: number; readonly total: number }
  | { readonly type: 'result'; readonly id: number; readonly value: unknown }
  | {
      readonly type: 'error';
      readonly id: number;
      readonly code: ErrorCode;
      readonly message: string;
      readonly details: Readonly<Record<string, unknown>>;
    };
