/**
 * The protocol's one error class. `device-agent/protocol/` imports nothing of ours (docs/architecture.md, "Who may
 * import whom"), so it cannot throw `OutpostError`; it throws this, with the same shape (`code`, `retryable`,
 * `details`), and every code here is also a key of `ERROR_CODES` in runtime/errors.ts, so the agent and the fleet
 * re-throw it as an `OutpostError` unchanged.
 */
export const PROTOCOL_ERROR_CODES = Object.freeze([
  'PROTOCOL_ID_INVALID',
  'PROTOCOL_MESSAGE_INVALID',
  'PROTOCOL_CBOR_INVALID',
  'PROTOCOL_BITMAP_INVALID',
  'PROTOCOL_BLOCK_INDEX_INVALID',
  'JOB_DOCUMENT_INVALID',
  'JOB_DOCUMENT_TOO_LARGE',
] as const);

export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  /** A malformed message or document does not become valid by sending it again. */
  readonly retryable = false;
  /** Structured facts: the offending `field` (dotted path), the bad value, what was accepted. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ProtocolErrorCode,
    message: string,
    options: { cause?: unknown; details?: Readonly<Record<string, unknown>> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): {
    code: ProtocolErrorCode;
    message: string;
    retryable: boolean;
    details: Readonly<Record<string, unknown>>;
  } {
    return { code: this.code, message: this.message, retryable: this.retryable, details: this.details };
  }
}

export function isProtocolError(error: unknown, code?: ProtocolErrorCode): error is ProtocolError {
  return error instanceof ProtocolError && (code === undefined || error.code === code);
}

/** A zod issue path as the dotted field name error messages use: `artifact.sha256`, `blocks[3]`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out === '' ? '(root)' : out;
}
