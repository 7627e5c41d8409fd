/**
 * The one error family of Outpost. Every failure a user or operator can meet has a stable `code` (scripts and the
 * fleet match on it), a `retryable` flag (the agent's retry policy reads it, as Greengrass splits retryable from
 * non-retryable deployment failures) and the underlying `cause`. Messages name the bad value and what was expected.
 */

/** Code → whether retrying the same operation can succeed without anyone changing anything. */
export const ERROR_CODES = Object.freeze({
  // Usage and configuration
  INVALID_ARGUMENT: false,
  UNKNOWN_TARGET: false,
  CONFIG_INVALID: false,
  FILE_NOT_FOUND: false,
  FILE_UNREADABLE: false,
  OUTPUT_UNWRITABLE: false,
  // ONNX model IO
  MODEL_INVALID: false,
  MODEL_EXTERNAL_DATA_MISSING: false,
  MODEL_UNSUPPORTED: false,
  // Compiler
  CALIBRATION_INVALID: false,
  ACCURACY_BUDGET_MISSED: false,
  OPSET_UPGRADE_FAILED: false,
  QUANTIZATION_FAILED: false,
  // A run of a model on one input passed its time or memory budget (compiler/evaluate/evaluator.ts)
  EVALUATION_BUDGET_EXCEEDED: false,
  // Artifact verification
  ARTIFACT_MANIFEST_INVALID: false,
  ARTIFACT_SCHEMA_UNSUPPORTED: false,
  ARTIFACT_HASH_MISMATCH: false,
  ARTIFACT_FILE_MISSING: false,
  ARTIFACT_FILE_UNEXPECTED: false,
  ARTIFACT_SIGNATURE_MISSING: false,
  ARTIFACT_SIGNATURE_INVALID: false,
  ARTIFACT_SIGNATURE_UNTRUSTED: false,
  ARTIFACT_PATH_ESCAPE: false,
  ARTIFACT_ARCHIVE_INVALID: false,
  ARTIFACT_TARGET_MISMATCH: false,
  KEY_INVALID: false,
  // Runtime
  BACKEND_UNAVAILABLE: false,
  SESSION_CREATE_FAILED: false,
  VARIANT_NOT_FOUND: false,
  INPUT_NAME_UNKNOWN: false,
  INPUT_MISSING: false,
  INPUT_DTYPE_MISMATCH: false,
  INPUT_SHAPE_MISMATCH: false,
  INPUT_INVALID: false,
  SYMBOLIC_DIM_UNBOUND: false,
  MODEL_RELEASED: false,
  INFERENCE_FAILED: false,
  OVERLOADED: true,
  // The caller went away before its queued request ran: it never reached the model
  REQUEST_CANCELLED: false,
  MODEL_NOT_FOUND: false,
  // Pipelines (runtime/pipeline/graph/): a definition that does not fit together (unknown step or tensor, a cycle,
  // shapes or dtypes that differ across a mapping), a referenced model that is not there, a transform parameter
  // outside its range, a list (boxes, crops) longer than its documented bound
  PIPELINE_INVALID: false,
  PIPELINE_MAPPING_MISMATCH: false,
  PIPELINE_MODEL_MISSING: false,
  TRANSFORM_PARAM_INVALID: false,
  PIPELINE_LIMIT_EXCEEDED: false,
  // outpost batch: the -o file exists but is not a batch output (runtime/batch/journal.ts)
  BATCH_JOURNAL_INVALID: false,
  // Asynchronous inference over MQTT (device-agent/serving/async-infer.ts): a request over the message size cap,
  // one whose own deadline passed before it was answered
  MESSAGE_TOO_LARGE: false,
  DEADLINE_EXCEEDED: true,
  // Data capture (runtime/server/capture/)
  CAPTURE_INVALID: false,
  CAPTURE_DECRYPT_FAILED: false,
  // Device agent
  HOOK_FAILED: false,
  SELF_TEST_FAILED: false,
  DOWNLOAD_FAILED: true,
  JOB_DOCUMENT_INVALID: false,
  MODEL_NOT_ALLOWED: false,
  DEPLOYMENT_INTERRUPTED: true,
  // The fleet ended the job (canceled, timed out, removed) before this device finished it
  JOB_ENDED: false,
  // An installed name@version is immutable: a different artifact under the same name@version is refused
  VERSION_CONFLICT: false,
  SERVICE_INSTALL_FAILED: false, // outpost install-service: useradd/systemctl refused
  // Guardrail alarms after a deployment (device-agent/deployment/guardrails.ts): the new version misbehaved in production
  GUARDRAIL_ERROR_RATE: false,
  GUARDRAIL_LATENCY: false,
  // MQTT transport and brokers
  TRANSPORT_OFFLINE: true,
  TRANSPORT_CONNECT_FAILED: true,
  TRANSPORT_REFUSED: false,
  TRANSPORT_SUBSCRIBE_REJECTED: false,
  TRANSPORT_PUBLISH_REJECTED: false,
  TRANSPORT_CLOSED: false,
  BROKER_START_FAILED: false,
  // Device–fleet protocol (device-agent/protocol/errors.ts throws these codes as ProtocolError)
  PROTOCOL_ID_INVALID: false,
  PROTOCOL_MESSAGE_INVALID: false,
  PROTOCOL_CBOR_INVALID: false,
  PROTOCOL_BITMAP_INVALID: false,
  PROTOCOL_BLOCK_INDEX_INVALID: false,
  JOB_DOCUMENT_TOO_LARGE: false, // with JOB_DOCUMENT_INVALID above
  // Fleet
  BROKER_UNREACHABLE: true,
  DEPLOYMENT_FAILED: false,
  THING_NOT_FOUND: false,
  GROUP_NOT_FOUND: false,
  DEPLOYMENT_NOT_FOUND: false,
  ARTIFACT_NOT_FOUND: false,
  ALREADY_EXISTS: false,
  // A deployment whose things (a group, a list) resolve to nobody
  TARGET_EMPTY: false,
  // A rollout strategy, rate, abort or retry setting outside its grammar or AWS IoT Jobs' limits (fleet/rollouts/)
  STRATEGY_INVALID: false,
  // The fleet's HTTP API (fleet/api/): a missing or wrong bearer token; the service not answering
  UNAUTHORIZED: false,
  FLEET_UNREACHABLE: true,
  // The fleet's database (fleet/store/): busy/locked and unreachable are transient; full needs an operator; a
  // conflict is a conditional update that lost to a concurrent writer (re-read, then decide again)
  STORE_LOCKED: true,
  STORE_UNREACHABLE: true,
  STORE_FULL: false,
  STORE_CONFLICT: true,
  STORE_SCHEMA_NEWER: false,
  STORE_FAILED: false,
  // Packaging (scripts/bundle.ts): a build or install step of the deployable bundle failed
  BUNDLE_FAILED: false,
  // Environment (a full disk needs someone, or the agent's pruning, to free space: retrying alone does not help)
  DISK_FULL: false,
  TIMEOUT: true,
  // A command stopped by SIGINT/SIGTERM, having cleaned up after itself (the CLI exits 128 + the signal number)
  INTERRUPTED: false,
  INTERNAL: false,
} satisfies Record<string, boolean>);

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * How a failure is retried (runtime/retry.ts), per code: `fatal` (retrying the same thing cannot help: stop and say
 * so), `retryable` (back off and try again, a bounded number of times), or `wait-for-network` (the broker or network
 * is away: try again once it is back, without spending attempts, as Greengrass waits for connectivity rather than
 * failing a deployment). Derived from ERROR_CODES' flag; the network codes are the ones listed here.
 */
export type ErrorCategory = 'retryable' | 'wait-for-network' | 'fatal';

const WAIT_FOR_NETWORK: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'TRANSPORT_OFFLINE',
  'TRANSPORT_CONNECT_FAILED',
  'BROKER_UNREACHABLE',
]);

export const ERROR_CATEGORIES: Readonly<Record<ErrorCode, ErrorCategory>> = Object.freeze(
  Object.fromEntries(
    Object.entries(ERROR_CODES).map(([code, retryable]) => [
      code,
      WAIT_FOR_NETWORK.has(code as ErrorCode) ? 'wait-for-network' : retryable ? 'retryable' : 'fatal',
    ]),
  ) as Record<ErrorCode, ErrorCategory>,
);

export interface OutpostErrorOptions {
  cause?: unknown;
  /** Overrides the code's default. */
  retryable?: boolean;
  /** Structured facts (the bad value, what was accepted) for logs and `--json` output. */
  details?: Readonly<Record<string, unknown>>;
}

export class OutpostError extends Error {
  override readonly name = 'OutpostError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: OutpostErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code];
    this.details = options.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; retryable: boolean; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, retryable: this.retryable, details: this.details };
  }
}

export function isOutpostError(error: unknown, code?: ErrorCode): error is OutpostError {
  return error instanceof OutpostError && (code === undefined || error.code === code);
}

/**
 * The category of anything thrown: its code's, except that an error whose `retryable` was overridden to false is
 * fatal (and to true, at least retryable). Anything that is not an OutpostError is a bug or unknown: fatal.
 */
export function errorCategory(error: unknown): ErrorCategory {
  if (!isOutpostError(error) || !error.retryable) return 'fatal';
  const category = ERROR_CATEGORIES[error.code];
  return category === 'fatal' ? 'retryable' : category;
}

/** The message of anything thrown, for wrapping foreign errors into ours. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Maps Node's filesystem error codes onto ours, so a full disk is `DISK_FULL` wherever it happens. */
export function fromFsError(error: unknown, path: string, action: string): OutpostError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `${action} ${path}`;
  switch (code) {
    case 'ENOENT':
      return new OutpostError('FILE_NOT_FOUND', `${where}: no such file`, { cause: error, details: { path } });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new OutpostError(
        action === 'read' ? 'FILE_UNREADABLE' : 'OUTPUT_UNWRITABLE',
        `${where}: permission denied`,
        {
          cause: error,
          details: { path },
        },
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new OutpostError('DISK_FULL', `${where}: no space left on device`, { cause: error, details: { path } });
    case 'EISDIR':
      return new OutpostError('FILE_UNREADABLE', `${where}: is a directory, expected a file`, {
        cause: error,
        details: { path },
      });
    default:
      return new OutpostError(
        action === 'read' ? 'FILE_UNREADABLE' : 'OUTPUT_UNWRITABLE',
        `${where}: ${messageOf(error)}`,
        {
          cause: error,
          details: { path },
        },
      );
  }
}
