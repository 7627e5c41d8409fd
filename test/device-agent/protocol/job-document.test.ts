import { describe, expect, it } from 'vitest';
import {
  type ProtocolError,
  MAX_JOB_DOCUMENT_BYTES,
  createJobDocument,
  isProtocolError,
  jobDocumentBytes,
  parseJobDocument,
} from '../../../device-agent/protocol/index.js';

const SHA = 'a'.repeat(64);
const VALID = Object.freeze({
  operation: 'outpost.deploy',
  schemaVersion: 1,
  model: { name: 'sample-cnn', version: '1.0.0' },
  artifact: {
    streamId: 'deploy-1',
    streamVersion: 1,
    fileId: 1,
    indexFileId: 0,
    size: 123_456,
    sha256: SHA,
    indexSize: 321,
    indexSha256: 'b'.repeat(64),
    blockSize: 65_536,
  },
  target: { arch: 'arm64' as const },
  keepVersions: 2,
  notes: 'canary',
});

function failure(input: unknown): ProtocolError {
  try {
    parseJobDocument(input);
  } catch (error) {
    if (isProtocolError(error)) return error;
    throw error;
  }
  throw new Error('expected the document to be refused');
}

/** VALID with one field replaced (or removed, for undefined) at a dotted path. */
function withField(path: string, value: unknown): Record<string, unknown> {
  const doc = structuredClone(VALID) as unknown as Record<string, unknown>;
  const keys = path.split('.');
  const last = keys.pop() ?? '';
  let node = doc;
  for (const key of keys) node = node[key] as Record<string, unknown>;
  if (value === undefined) Reflect.deleteProperty(node, last);
  else node[last] = value;
  return doc;
}

describe('job document', () => {
  it('parses a valid document from an object, JSON text or bytes', () => {
    expect(parseJobDocument(VALID)).toEqual(VALID);
    expect(parseJobDocument(JSON.stringify(VALID))).toEqual(VALID);
    expect(parseJobDocument(Buffer.from(JSON.stringify(VALID)))).toEqual(VALID);
  });

  it('createJobDocument fills in operation and schemaVersion', () => {
    const { model, artifact, target, keepVersions, notes } = VALID;
    expect(createJobDocument({ model, artifact, target, keepVersions, notes })).toEqual(VALID);
  });

  it.each([
    ['artifact.sha256', undefined, 'artifact.sha256'],
    ['artifact.sha256', 'ABC', 'artifact.sha256'],
    ['artifact.streamId', 'has/slash', 'artifact.streamId'],
    ['artifact.fileId', 256, 'artifact.fileId'],
    ['artifact.indexFileId', 1, 'artifact.indexFileId'],
    ['artifact.blockSize', 255, 'artifact.blockSize'],
    ['artifact.blockSize', 131_073, 'artifact.blockSize'],
    ['artifact.size', 0, 'artifact.size'],
    ['artifact.manifestSha256', 'not-a-digest', 'artifact.manifestSha256'],
    ['model.name', '../etc', 'model.name'],
    ['model.version', '', 'model.version'],
    ['model', undefined, 'model'],
    ['operation', 'other.op', 'operation'],
    ['schemaVersion', 2, 'schemaVersion'],
    ['target.arch', 'riscv', 'target.arch'],
    ['keepVersions', 0, 'keepVersions'],
    ['notes', 'x'.repeat(1025), 'notes'],
    ['artifact.extra', true, 'artifact.extra'],
    ['keepVersion', 2, 'keepVersion'],
  ])('refuses %s = %j with JOB_DOCUMENT_INVALID naming %s', (path, value, field) => {
    const error = failure(withField(path, value));
    expect(error.code).toBe('JOB_DOCUMENT_INVALID');
    expect(error.details.field).toBe(field);
    expect(error.message).toContain(`job document field ${field}:`);
  });

  it('lists every problem, not only the first', () => {
    const error = failure(withField('artifact.sha256', 'x'));
    expect(failure({ ...withField('artifact.sha256', 'x'), keepVersions: -1 }).details.problems).toHaveLength(2);
    expect(error.details.problems).toEqual([{ field: 'artifact.sha256', message: expect.any(String) as string }]);
  });

  it('refuses text that is not JSON', () => {
    const error = failure('{"operation":');
    expect(error.code).toBe('JOB_DOCUMENT_INVALID');
    expect(error.details.field).toBe('(root)');
  });

  it('refuses documents over the 32 KB AWS IoT Jobs limit before reading them', () => {
    const padding = 'x'.repeat(MAX_JOB_DOCUMENT_BYTES);
    const big = { ...VALID, notes: padding };
    expect(jobDocumentBytes(big)).toBeGreaterThan(MAX_JOB_DOCUMENT_BYTES);
    for (const input of [big, JSON.stringify(big)]) {
      const error = failure(input);
      expect(error.code).toBe('JOB_DOCUMENT_TOO_LARGE');
      expect(error.details).toMatchObject({ limit: 32_768 });
    }
  });
});
