import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { absentVariants, filesFor } from '../../device-agent/delivery-check.js';
import { chooseFetch, heldVariants, readBundledManifests } from '../../device-agent/fetch-choice.js';
import { verifyArtifact, type Manifest } from '../../runtime/artifact/index.js';
import { openPipeline } from '../../runtime/pipeline/index.js';
import { mlpPipeline } from '../helpers/pipeline-artifacts.js';
import { mlpArtifact, signingKeys, type Keys } from '../helpers/signed-artifacts.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/*
 * What a files-layout device fetches of a pipeline (device-agent/fetch-choice.ts), and what verification and
 * openPipeline then accept: a real `pipeline build` bundling a real two-variant MLP artifact (int8 rank 1, fp32
 * rank 2) as models "a" and "b", real hashes, real ONNX Runtime. The delivery end to end: test/fleet/service/
 * files-layout.test.ts.
 */
let tmp: { dir: string; dispose: () => Promise<void> };
let keys: Keys;
let model: string;
let pipeline: string;
let manifest: Manifest;
let bundled: Map<string, Manifest>;

beforeAll(async () => {
  tmp = await suiteTmpDir('outpost-fetch-choice-');
  keys = await signingKeys(tmp.dir, 'choice');
  model = await mlpArtifact(join(tmp.dir, 'mlp'), '1.0.0', keys, { inWidth: 128, hidden: 256 });
  pipeline = await mlpPipeline(tmp.dir, '1.0.0', keys, model);
  manifest = JSON.parse(await readFile(join(pipeline, 'manifest.json'), 'utf8')) as Manifest;
  bundled = await readBundledManifests(pipeline, manifest);
}, 120_000);

afterAll(async () => tmp.dispose());

const variantFile = (key: string, id: string): string =>
  `models/${key}/${bundled.get(key)?.variants.find((v) => v.id === id)?.file ?? '?'}`;

/** The pipeline as a device holding only `drop`'s complement: a copy without those files. */
async function holding(name: string, drop: readonly string[]): Promise<string> {
  const dir = join(tmp.dir, name);
  await rm(dir, { recursive: true, force: true });
  await cp(pipeline, dir, { recursive: true });
  for (const path of drop) await rm(join(dir, path));
  return dir;
}

describe('fetch choice: a pipeline fetches one variant of each bundled model', () => {
  it('chooses each bundled model’s rank-1 variant, fetching its manifest first; a model artifact as before', async () => {
    expect(bundled.get('a')?.variants.map((v) => [v.id, v.rank])).toEqual([
      ['int8', 1],
      ['fp32', 2],
    ]);
    const fetched: string[] = [];
    const choice = await chooseFetch(manifest, {
      backend: 'auto',
      count: 2,
      fetch: (paths) => {
        fetched.push(...paths);
        return Promise.resolve();
      },
      filesDir: pipeline,
    });
    expect(fetched).toEqual(['models/a/manifest.json', 'models/b/manifest.json']);
    expect(choice.variants).toEqual(['a/int8', 'b/int8']);
    const skipped = [variantFile('a', 'fp32'), variantFile('b', 'fp32')];
    expect(choice.paths).toEqual(
      Object.keys(manifest.files)
        .filter((p) => !skipped.includes(p))
        .sort(),
    );
    expect(choice.paths).toContain('labels.txt');
    expect(absentVariants(manifest, choice.variants, bundled)).toEqual(['a/fp32', 'b/fp32']);
    // A choice recorded before (a restart) is kept; an old agent's `[]` for a pipeline means every variant.
    const kept = await chooseFetch(manifest, {
      backend: 'auto',
      count: 1,
      chosen: ['a/fp32', 'b/int8'],
      fetch: () => Promise.resolve(),
      filesDir: pipeline,
    });
    expect(kept.variants).toEqual(['a/fp32', 'b/int8']);
    expect(heldVariants(manifest, bundled, [])).toEqual(['a/int8', 'a/fp32', 'b/int8', 'b/fp32']);
    expect(filesFor(manifest, heldVariants(manifest, bundled, []), bundled)).toEqual(
      Object.keys(manifest.files).sort(),
    );
    // The model artifact's own choice is unchanged: the first `count` ranked variants.
    const own = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8')) as Manifest;
    const single = await chooseFetch(own, {
      backend: 'auto',
      count: 1,
      fetch: () => Promise.resolve(),
      filesDir: model,
    });
    expect(single.variants).toEqual(['int8']);
  });

  it('verification excuses exactly the absent variants; openPipeline loads the fetched ones', async () => {
    const dir = await holding('held', [variantFile('a', 'fp32'), variantFile('b', 'fp32')]);
    const absent = ['a/fp32', 'b/fp32'];
    const verified = await verifyArtifact(dir, { trustedKeys: [keys.publicKeyPath], absentVariants: absent });
    expect(verified.absentVariants).toEqual(absent);
    await expect(verifyArtifact(dir, { trustedKeys: [keys.publicKeyPath] })).rejects.toMatchObject({
      code: 'ARTIFACT_FILE_MISSING',
    });
    // Excusing "a"'s fp32 does not excuse a missing int8 of "b", nor both of "a"'s variants.
    const lacksB = await holding('lacks-b', [variantFile('a', 'fp32'), variantFile('b', 'int8')]);
    await expect(verifyArtifact(lacksB, { absentVariants: ['a/fp32'] })).rejects.toMatchObject({
      code: 'ARTIFACT_FILE_MISSING',
    });
    const lacksA = await holding('lacks-a', [variantFile('a', 'fp32'), variantFile('a', 'int8')]);
    await expect(verifyArtifact(lacksA, { absentVariants: ['a/fp32', 'a/int8'] })).rejects.toMatchObject({
      code: 'ARTIFACT_FILE_MISSING',
    });
    const opened = await openPipeline(dir, { trustedKeys: [keys.publicKeyPath], absentVariants: absent });
    try {
      expect(Object.values(opened.models).map((m) => m.variant.id)).toEqual(['int8', 'int8']);
    } finally {
      await opened.release();
    }
  });

  it('a tampered fetched file, or a tampered bundled manifest, still fails', async () => {
    const dir = await holding('tampered', [variantFile('a', 'fp32'), variantFile('b', 'fp32')]);
    const absent = ['a/fp32', 'b/fp32'];
    const int8 = join(dir, variantFile('a', 'int8'));
    const bytes = await readFile(int8);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    await writeFile(int8, bytes);
    await expect(verifyArtifact(dir, { absentVariants: absent })).rejects.toMatchObject({
      code: 'ARTIFACT_HASH_MISMATCH',
    });
    const forged = await holding('forged', [variantFile('a', 'fp32'), variantFile('b', 'fp32')]);
    await writeFile(join(forged, 'models/a/manifest.json'), '{}');
    await expect(verifyArtifact(forged, { absentVariants: absent })).rejects.toMatchObject({
      code: 'ARTIFACT_HASH_MISMATCH',
    });
  });
});
