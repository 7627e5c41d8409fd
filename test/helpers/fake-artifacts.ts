import { gzipSync } from 'node:zlib';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Header, Pax, type HeaderData } from 'tar';
import { fp32Variant, manifestDraft } from './manifest-draft.js';
import { tmpDir } from './tmp.js';
import {
  generateSigningKeys,
  packArtifact,
  writeArtifact,
  type ArtifactFileSource,
  type ManifestDraft,
  type WriteArtifactOptions,
} from '../../runtime/artifact/index.js';

/** A fake model: the artifact layer never looks inside a variant, so any bytes do. */
export const VARIANT_BYTES = new Uint8Array(Buffer.from('not really an onnx model, but bytes are bytes\n'));
export const VARIANT_FILE = 'variants/model.fp32.onnx';

export function sampleDraft(): ManifestDraft {
  return manifestDraft({
    name: 'tiny-classifier',
    version: '1.0.0',
    createdAt: '2024-01-01T00:00:00.000Z',
    target: { profile: 'x86_64', arch: 'x86_64' },
    inputs: [{ name: 'input', dtype: 'float32', shape: ['batch', 4] }],
    outputs: [{ name: 'output', dtype: 'float32', shape: ['batch', 2] }],
    variants: [fp32Variant(VARIANT_FILE)],
    pipeline: { postprocess: [{ op: 'softmax' }], labels: 'labels.txt' },
    testVectors: {
      tolerance: { atol: 1e-5, rtol: 1e-4 },
      cases: [
        {
          id: 'case0',
          inputs: { input: 'test-vectors/case0/input.npy' },
          outputs: { output: 'test-vectors/case0/output.npy' },
        },
      ],
    },
    producer: { outpost: '0.1.0' },
  });
}

export function sampleFiles(): ArtifactFileSource[] {
  return [
    { path: VARIANT_FILE, from: VARIANT_BYTES },
    { path: 'labels.txt', from: Buffer.from('cat\ndog\n') },
    { path: 'test-vectors/case0/input.npy', from: Buffer.from('input tensor bytes') },
    { path: 'test-vectors/case0/output.npy', from: Buffer.from('output tensor bytes') },
  ];
}

/** Writes the sample artifact to `<root>/<name>` and returns its path. */
export async function makeArtifact(
  root: string,
  options: Partial<WriteArtifactOptions> & { name?: string } = {},
): Promise<string> {
  const dir = join(root, options.name ?? 'artifact');
  await writeArtifact(dir, {
    manifest: options.manifest ?? sampleDraft(),
    files: options.files ?? sampleFiles(),
    ...(options.signingKey === undefined ? {} : { signingKey: options.signingKey }),
  });
  return dir;
}

/** The sample artifact (signed if asked) packed to `<tmp>/artifact.tar.gz`, with the keys that signed it. */
export async function packedArtifact(
  options: { signed?: boolean } = {},
): Promise<{ tgz: string; keys: ReturnType<typeof generateSigningKeys> }> {
  const root = await tmpDir();
  const keys = generateSigningKeys();
  const dir = await makeArtifact(root, options.signed === true ? { signingKey: keys.privateKeyPem } : {});
  const tgz = join(root, 'artifact.tar.gz');
  await packArtifact(dir, tgz);
  return { tgz, keys };
}

/** Every path under `dir`, relative, sorted (for "nothing was left behind" assertions). */
export async function listTree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

export interface RawEntry extends HeaderData {
  path: string;
  body?: Uint8Array;
  /** Put `path` in a pax extended header and a harmless name in the ustar header, as GNU/BSD tar do for long names. */
  viaPax?: boolean;
}

/**
 * A .tar.gz built block by block, so tests can craft the archives no well-behaved packer would write (`..` names,
 * absolute names, links, devices). Mode, owner and times are irrelevant to what is under test.
 */
export function rawTarGz(entries: readonly RawEntry[], options: { endBlocks?: boolean } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const { body, viaPax, ...data } of entries) {
    const size = body?.byteLength ?? 0;
    if (viaPax === true) blocks.push(new Pax({ path: data.path }).encode());
    const header = new Header({
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: new Date(0),
      type: 'File',
      ...data,
      path: viaPax === true ? 'innocent.txt' : data.path,
      size,
    });
    const block = Buffer.alloc(512);
    header.encode(block);
    blocks.push(block);
    if (body !== undefined) {
      blocks.push(Buffer.from(body));
      blocks.push(Buffer.alloc((512 - (size % 512)) % 512));
    }
  }
  if (options.endBlocks !== false) blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}
