import * as z from 'zod';
import { ProtocolError, fieldPath } from './errors.js';
import { blockCount, BLOCK_INDEX_ALGORITHM } from './block-index.js';
import { MAX_BLOCK_SIZE, MAX_FILE_ID, MIN_BLOCK_SIZE } from './limits.js';

/**
 * The delivery index of the `files` stream layout (job document `artifact.layout: "files"`): the first file a
 * device fetches, and the only one it fetches before deciding anything. It carries the artifact's manifest.json and
 * manifest.sig byte for byte (base64), and for every other file of the artifact its stream file id, size, sha256 and
 * block hashes. A device checks this file against the job document's `indexSha256`, the manifest against its
 * signature, and each entry's size and sha256 against the signed manifest's `files` before it asks for one block of
 * that file: the block hashes let it keep good blocks and ask again for bad ones, the signed sha256 decides whether
 * the whole file is the one the signer meant.
 *
 *   { "algorithm": "sha256", "blockSize": 65536, "manifest": "<base64>", "signature": "<base64>"?,
 *     "files": [ { "path": "variants/int8.onnx", "fileId": 1, "size": 123, "sha256": "<hex>", "blocks": [...] } ] }
 *
 * Block `i` of a file is bytes [i·blockSize, min((i+1)·blockSize, size)), as in the block-hash index.
 */
export const DELIVERY_INDEX_FILE_ID = 0;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex characters');

export const deliveryFileSchema = z.strictObject({
  /** The path inside the artifact (a key of the manifest's `files`). */
  path: z.string().min(1).max(255),
  fileId: z
    .number()
    .int()
    .min(DELIVERY_INDEX_FILE_ID + 1)
    .max(MAX_FILE_ID),
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  sha256: hex64,
  blocks: z.array(hex64),
});
export type DeliveryFile = z.infer<typeof deliveryFileSchema>;

export const deliveryIndexSchema = z
  .strictObject({
    algorithm: z.literal(BLOCK_INDEX_ALGORITHM),
    blockSize: z.number().int().min(MIN_BLOCK_SIZE).max(MAX_BLOCK_SIZE),
    manifest: z.base64(),
    signature: z.base64().optional(),
    files: z.array(deliveryFileSchema),
  })
  .superRefine((index, context) => {
    const ids = new Set<number>();
    const paths = new Set<string>();
    for (const [i, file] of index.files.entries()) {
      if (file.blocks.length !== blockCount(file.size, index.blockSize)) {
        context.addIssue({
          code: 'custom',
          message: 'blocks must list exactly ⌈size / blockSize⌉ hashes',
          path: ['files', i, 'blocks'],
        });
      }
      if (ids.has(file.fileId) || paths.has(file.path)) {
        context.addIssue({ code: 'custom', message: 'file ids and paths must be distinct', path: ['files', i] });
      }
      ids.add(file.fileId);
      paths.add(file.path);
    }
  });
export type DeliveryIndex = z.infer<typeof deliveryIndexSchema>;

/** The delivery index's bytes: compact JSON, keys in schema order, so the same artifact always gives the same bytes. */
export function encodeDeliveryIndex(index: DeliveryIndex): Buffer {
  const { algorithm, blockSize, manifest, signature, files } = index;
  return Buffer.from(
    JSON.stringify({
      algorithm,
      blockSize,
      manifest,
      ...(signature === undefined ? {} : { signature }),
      files: files.map(({ path, fileId, size, sha256, blocks }) => ({ path, fileId, size, sha256, blocks })),
    }),
    'utf8',
  );
}

/** Reads and validates a delivery index; throws PROTOCOL_BLOCK_INDEX_INVALID naming the field. */
export function parseDeliveryIndex(bytes: Uint8Array): DeliveryIndex {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new ProtocolError('PROTOCOL_BLOCK_INDEX_INVALID', `delivery index is not JSON: ${(error as Error).message}`, {
      cause: error,
      details: { field: '(root)' },
    });
  }
  const parsed = deliveryIndexSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue === undefined ? '(root)' : fieldPath(issue.path);
  throw new ProtocolError(
    'PROTOCOL_BLOCK_INDEX_INVALID',
    `delivery index field ${field}: ${issue?.message ?? 'invalid'}`,
    { details: { field } },
  );
}
