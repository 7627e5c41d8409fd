import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDelivery, filesFor, rankedVariants, type DeliveryPolicy } from '../../device-agent/delivery-check.js';
import {
  createJobDocument,
  encodeDeliveryIndex,
  parseDeliveryIndex,
  type DeliveryIndex,
} from '../../device-agent/protocol/index.js';
import { prepareArtifact, type PreparedArtifact } from '../../fleet/deploy-artifact.js';
import { loadModel } from '../../runtime/model/index.js';
import { sha256Bytes, verifyArtifact } from '../../runtime/artifact/index.js';
import { sampleCnnArtifact, type SampleArtifact } from '../helpers/artifacts.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/*
 * The files layout on the fleet side (fleet/delivery-files.ts) and the decisions a device takes from its delivery
 * index before any payload byte (device-agent/delivery-check.ts), without a broker: the end-to-end path over real
 * Mosquitto is test/device-agent/variants.test.ts.
 */
let dir: string;
let dispose: () => Promise<void>;
let sample: SampleArtifact;
let prepared: PreparedArtifact;
let index: DeliveryIndex;
let publicKey: string;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  sample = await sampleCnnArtifact(dir, { signed: true });
  publicKey = join(dir, 'trusted.pub');
  await writeFile(publicKey, sample.keys.publicKeyPem);
  prepared = await prepareArtifact({ artifact: sample.dir, layout: 'files', workDir: dir, trustedKeys: [publicKey] });
  index = parseDeliveryIndex(await readFile(prepared.indexPath));
});

afterAll(async () => {
  await rm(prepared.scratch, { recursive: true, force: true });
  await dispose();
});

const policy = (overrides: Partial<DeliveryPolicy> = {}): DeliveryPolicy => ({
  trustedKeys: [publicKey],
  requireSignature: true,
  arch: 'x86_64',
  models: [],
  job: { name: 'sample-cnn', version: '1.0.0' },
  ...overrides,
});

describe('files layout: fleet side', () => {
  it('serves the delivery index as file 0 and every artifact file as its own stream file, sorted by path', async () => {
    const manifest = JSON.parse(await readFile(join(sample.dir, 'manifest.json'), 'utf8')) as {
      files: Record<string, { sha256: string; bytes: number }>;
    };
    expect(prepared.document.artifact).toMatchObject({ layout: 'files', indexFileId: 0 });
    expect(prepared.document.artifact.fileId).toBeUndefined();
    expect(prepared.document.artifact.indexSha256).toBe(sha256Bytes(await readFile(prepared.indexPath)));
    expect(index.files.map((f) => f.path)).toEqual(Object.keys(manifest.files).sort());
    expect(prepared.streamFiles.map((f) => f.fileId)).toEqual([0, ...index.files.map((f) => f.fileId)]);
    for (const entry of index.files) {
      const served = prepared.streamFiles.find((f) => f.fileId === entry.fileId);
      const bytes = await readFile(served?.path ?? '');
      expect(sha256Bytes(bytes)).toBe(manifest.files[entry.path]?.sha256);
    }
    expect(Buffer.from(index.manifest, 'base64')).toEqual(await readFile(join(sample.dir, 'manifest.json')));
    expect(encodeDeliveryIndex(index)).toEqual(await readFile(prepared.indexPath)); // the same bytes again
  });

  it('a job document of the files layout must not name an archive, and the archive layout must', () => {
    const artifact = {
      streamId: 's',
      indexFileId: 0,
      size: 10,
      indexSize: 5,
      indexSha256: 'a'.repeat(64),
      blockSize: 256,
    };
    const model = { name: 'm', version: '1' };
    expect(() => createJobDocument({ model, artifact: { ...artifact, layout: 'files', fileId: 1 } })).toThrow(
      /artifact\.fileId/,
    );
    expect(() => createJobDocument({ model, artifact })).toThrow(/artifact\.fileId/);
    expect(createJobDocument({ model, artifact: { ...artifact, layout: 'files' } }).artifact.layout).toBe('files');
  });
});

describe('files layout: what a device decides from the delivery index', () => {
  it('accepts a signed index that matches its manifest, and picks the rank-1 variant and the shared files', async () => {
    const checked = await checkDelivery(index, policy());
    expect(checked.manifestSha256).toBe(prepared.manifestSha256);
    const ranked = rankedVariants(checked.manifest, 'auto');
    expect(ranked).toEqual(['fp32', 'fp32-copy']);
    expect(filesFor(checked.manifest, ranked.slice(0, 1))).not.toContain('variants/cnn.copy.onnx');
    expect(filesFor(checked.manifest, ranked.slice(0, 1))).toContain('variants/cnn.fp32.onnx');
  });

  it.each([
    ['an unsigned index where signatures are required', { signature: undefined }, {}, 'ARTIFACT_SIGNATURE_MISSING'],
    ['another model than the job names', {}, { job: { name: 'other', version: '1.0.0' } }, 'ARTIFACT_MANIFEST_INVALID'],
    ['a model the device may not run', {}, { models: ['detector'] }, 'MODEL_NOT_ALLOWED'],
    ['an entry whose sha256 is not the signed one', { tamper: true }, {}, 'ARTIFACT_HASH_MISMATCH'],
  ] as const)('refuses %s', async (_what, change, overrides, code) => {
    const [first, ...rest] = index.files;
    if (first === undefined) throw new Error('no files');
    const edited: DeliveryIndex = {
      ...index,
      ...('signature' in change ? { signature: undefined } : {}),
      files: 'tamper' in change ? [{ ...first, sha256: 'f'.repeat(64) }, ...rest] : index.files,
    };
    await expect(checkDelivery(edited, policy(overrides))).rejects.toMatchObject({ code });
  });

  it('an install that lacks the other variant verifies and loads with absentVariants, and refuses that variant', async () => {
    const partial = join(dir, 'partial');
    await cp(sample.dir, partial, { recursive: true });
    await rm(join(partial, 'variants', 'cnn.copy.onnx'));
    await expect(verifyArtifact(partial, { trustedKeys: [publicKey] })).rejects.toMatchObject({
      code: 'ARTIFACT_FILE_MISSING',
    });
    const verified = await verifyArtifact(partial, { trustedKeys: [publicKey], absentVariants: ['fp32-copy'] });
    expect(verified.absentVariants).toEqual(['fp32-copy']);
    // Only the variants named may be missing: another missing file is still refused.
    await rm(join(partial, 'labels.txt'));
    await expect(
      verifyArtifact(partial, { trustedKeys: [publicKey], absentVariants: ['fp32-copy'] }),
    ).rejects.toMatchObject({ code: 'ARTIFACT_FILE_MISSING' });
    await cp(join(sample.dir, 'labels.txt'), join(partial, 'labels.txt'));
    const model = await loadModel(partial, { trustedKeys: [publicKey], absentVariants: ['fp32-copy'], warmup: 0 });
    expect(model.variant.id).toBe('fp32');
    await model.release();
    await expect(
      loadModel(partial, { trustedKeys: [publicKey], absentVariants: ['fp32-copy'], variant: 'fp32-copy' }),
    ).rejects.toMatchObject({ code: 'VARIANT_NOT_FOUND' });
  });
});
