import * as z from 'zod';
import { ProtocolError, fieldPath } from './errors.js';
import { streamIdSchema } from './ids.js';
import { MAX_BLOCK_SIZE, MAX_FILE_ID, MIN_BLOCK_SIZE } from './limits.js';

/**
 * Outpost's job document for a model deployment: what `fleet/deploy.ts` puts in the AWS IoT job and what the agent
 * acts on. The artifact itself is not in the document (IoT jobs cap documents at 32 KB); the document names the
 * stream and the files in it that carry the artifact, and the digests that decide whether what arrived is it.
 * docs/job-document.md is the reference for users; keep the two in step.
 *
 * Within schemaVersion 1 fields are only ever added as optional; unknown fields are refused, so a typo
 * (`keepVersion`) fails loudly on the device instead of being ignored.
 */
export const JOB_DOCUMENT_OPERATION = 'outpost.deploy';
export const JOB_DOCUMENT_SCHEMA_VERSION = 1;
/** API reference, iot-jobs-data JobExecution, jobDocument: "Length Constraints: Maximum length of 32768". */
export const MAX_JOB_DOCUMENT_BYTES = 32 * 1024; // bytes of UTF-8 JSON
export const MAX_NOTES_CHARS = 1024; // characters: notes are for humans reading `outpost agent status`
export const MAX_KEEP_VERSIONS = 100;
export const MAX_BAKE_SECONDS = 7 * 24 * 3600; // seconds: a week, CodeDeploy's longest wait

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex characters (a sha256)');
const fileId = z.number().int().min(0).max(MAX_FILE_ID);
const bytes = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** The same patterns as the artifact manifest's name and version (runtime/artifact/manifest.ts): they become directories. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const MODEL_VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;

export const jobDocumentSchema = z
  .strictObject({
    operation: z.literal(JOB_DOCUMENT_OPERATION),
    schemaVersion: z.literal(JOB_DOCUMENT_SCHEMA_VERSION),
    model: z.strictObject({
      name: z.string().regex(MODEL_NAME_PATTERN, 'a model name: letters, digits, ".", "_" or "-" (max 128)'),
      version: z.string().regex(MODEL_VERSION_PATTERN, 'a version such as 1.2.0 (max 64)'),
    }),
    artifact: z.strictObject({
      /** The MQTT-based file delivery stream carrying the files below. */
      streamId: streamIdSchema,
      /** When set, the device sends it as GetStream `s` and the service answers VersionMismatch if it moved on. */
      streamVersion: z.number().int().min(0).optional(),
      /**
       * How the stream carries the artifact (docs/job-document.md, "Stream layouts"). `archive` (default): one
       * `.tar.gz` (`fileId`, `size`, `sha256`) and its block-hash index. `files`: the index file is a delivery index
       * (delivery-index.ts: the signed manifest and every file's block hashes) and each artifact file is its own
       * stream file, so a device fetches only the variants it will run; `fileId` and `sha256` are then absent and
       * `size` is the sum of every file (what a device fetching everything would fetch).
       */
      layout: z.enum(['archive', 'files']).optional(),
      /** Stream file with the artifact `.tar.gz` (archive layout). */
      fileId: fileId.optional(),
      /** Stream file with the block-hash index of that archive (streams.ts, BlockIndex), or the delivery index. */
      indexFileId: fileId,
      /** Bytes of the `.tar.gz` (archive layout), or of all the artifact's files (files layout). */
      size: bytes,
      /** sha256 of the whole `.tar.gz` (archive layout): the download is only accepted if it matches. */
      sha256: sha256.optional(),
      /** Bytes and sha256 of the index file, so the index is checked before any block is checked against it. */
      indexSize: bytes,
      indexSha256: sha256,
      /** GetStream block size `l` the index was built with; the device must request blocks of exactly this size. */
      blockSize: z.number().int().min(MIN_BLOCK_SIZE).max(MAX_BLOCK_SIZE),
      /**
       * sha256 of the artifact's manifest.json. A device that has this model version installed with exactly this
       * manifest activates it without fetching the archive (a rollback to a version it still has).
       */
      manifestSha256: sha256.optional(),
    }),
    /** The hosts the artifact fits (the manifest's target.arch); a device of another arch REJECTS the job. */
    target: z.strictObject({ arch: z.enum(['x86_64', 'arm64', 'any']) }).optional(),
    /**
     * How the new version takes traffic once it passed its self-test (SageMaker's production variants and shadow
     * tests, on the device): `replace` (default) makes it the only production version; `canary` sends it `percent`
     * of requests beside the current one; `shadow` mirrors `percent` of requests to it, compares, and answers none.
     * A later `replace` deployment of either version promotes it or drops the other. `bakeSeconds` overrides the
     * agent's guardrail window for this deployment (0: no bake), when the agent has guardrails configured.
     */
    rollout: z
      .strictObject({
        mode: z.enum(['replace', 'canary', 'shadow']),
        percent: z.number().min(0).max(100).optional(),
        bakeSeconds: z.number().min(0).max(MAX_BAKE_SECONDS).optional(),
      })
      .refine((r) => r.mode === 'replace' || r.percent !== undefined, {
        message: 'canary and shadow need a percent',
        path: ['percent'],
      })
      .optional(),
    /** Installed versions of this model to keep after activation (the active one included). */
    keepVersions: z.number().int().min(1).max(MAX_KEEP_VERSIONS).optional(),
    notes: z.string().max(MAX_NOTES_CHARS).optional(),
  })
  .refine((doc) => doc.artifact.fileId !== doc.artifact.indexFileId, {
    message: 'fileId and indexFileId must name different stream files',
    path: ['artifact', 'indexFileId'],
  })
  .superRefine((doc, context) => {
    // Each missing or stray field named on its own, as zod names a missing required one.
    const files = doc.artifact.layout === 'files';
    for (const field of ['fileId', 'sha256'] as const) {
      const present = doc.artifact[field] !== undefined;
      if (present === !files) continue;
      context.addIssue({
        code: 'custom',
        message: files
          ? 'the files layout names its files in the delivery index, not in fileId and sha256'
          : `the archive layout needs ${field}`,
        path: ['artifact', field],
      });
    }
  });

export type JobDocument = z.output<typeof jobDocumentSchema>;
export type JobDocumentInput = z.input<typeof jobDocumentSchema>;

/**
 * Reads a job document from an execution's `jobDocument` (an object, or JSON text or bytes). Throws
 * JOB_DOCUMENT_TOO_LARGE past 32 KB and JOB_DOCUMENT_INVALID naming the first bad field (`details.field`) and
 * listing every problem (`details.problems`).
 */
export function parseJobDocument(input: unknown): JobDocument {
  let value: unknown = input;
  let size: number;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
    checkSize(size);
    try {
      value = JSON.parse(typeof input === 'string' ? input : Buffer.from(input).toString('utf8'));
    } catch (error) {
      throw new ProtocolError('JOB_DOCUMENT_INVALID', `job document is not JSON: ${(error as Error).message}`, {
        cause: error,
        details: { field: '(root)' },
      });
    }
  } else {
    size = jobDocumentBytes(input);
    checkSize(size);
  }
  const parsed = jobDocumentSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => ({ field: issueField(issue), message: issue.message }));
  const first = problems[0] ?? { field: '(root)', message: 'invalid' };
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  throw new ProtocolError('JOB_DOCUMENT_INVALID', `job document field ${first.field}: ${first.message}${more}`, {
    details: { field: first.field, problems },
  });
}

/** Builds a document from its parts, validated and size-checked exactly as a device will read it. */
export function createJobDocument(fields: Omit<JobDocumentInput, 'operation' | 'schemaVersion'>): JobDocument {
  return parseJobDocument({ operation: JOB_DOCUMENT_OPERATION, schemaVersion: JOB_DOCUMENT_SCHEMA_VERSION, ...fields });
}

/** UTF-8 bytes of the document as JSON: what counts against the 32 KB limit. */
export function jobDocumentBytes(document: unknown): number {
  const text = JSON.stringify(document) as string | undefined;
  return text === undefined ? 0 : Buffer.byteLength(text, 'utf8');
}

function checkSize(size: number): void {
  if (size > MAX_JOB_DOCUMENT_BYTES) {
    throw new ProtocolError(
      'JOB_DOCUMENT_TOO_LARGE',
      `job document is ${size} bytes; AWS IoT Jobs accepts at most ${MAX_JOB_DOCUMENT_BYTES}`,
      { details: { field: '(root)', bytes: size, limit: MAX_JOB_DOCUMENT_BYTES } },
    );
  }
}

function issueField(issue: z.core.$ZodIssue): string {
  // An unknown key is reported on its parent object; name the key itself.
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => fieldPath([...issue.path, key])).join(', ');
  }
  return fieldPath(issue.path);
}
