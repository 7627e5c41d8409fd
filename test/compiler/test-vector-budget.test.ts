import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../compiler/compile.js';
import { GraphBuilder, saveModel } from '../../compiler/onnx/index.js';
import { MIN_TEST_VECTOR_BUDGET, boundTestVectors, testVectorBudget } from '../../compiler/test-vector-budget.js';
import { selfTest } from '../../device-agent/deployment/self-test.js';
import { prettyJson, sha256File, type Manifest } from '../../runtime/artifact/index.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/*
 * Bounded test vectors (issue 13): a model whose output is bigger than the budget ships a seeded sample of output
 * elements, the artifact's vectors stay within max(1 MiB, 5 % of the variant), and the sample still catches a
 * corrupt variant.
 */
const OUTPUTS = 160_000; // output elements: 640 KB of float32 per case, over the 1 MiB budget for two cases

let dir: string;
let dispose: () => Promise<void>;
let artifact: string;
let manifest: Manifest;

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  const g = new GraphBuilder('wide');
  const x = g.input('x', 'float32', [1, 4]);
  const w = g.initializer(
    'w',
    Float32Array.from({ length: 4 * OUTPUTS }, (_, i) => Math.sin(i) * 0.5),
    [4, OUTPUTS],
  );
  g.output(g.node('MatMul', [x, w]), 'float32', [1, OUTPUTS]);
  const model = join(dir, 'wide.onnx');
  await saveModel(g.build({ opsets: { '': 17 } }), model);
  artifact = join(dir, 'wide-1');
  await compile({
    model,
    target: 'x86_64:avx512-vnni',
    output: artifact,
    name: 'wide',
    version: '1.0.0',
    precision: 'fp32',
    overwrite: true,
  });
  manifest = JSON.parse(await readFile(join(artifact, 'manifest.json'), 'utf8')) as Manifest;
}, 120_000);

afterAll(async () => {
  await dispose();
});

const options = { trustedKeys: [], requireSignature: false, backend: 'native', benchmarkIterations: 1 } as const;

describe('bounded test vectors', () => {
  it('keeps a big output as a seeded sample of elements, within max(1 MiB, 5 % of the variant)', () => {
    const vectorBytes = Object.entries(manifest.files)
      .filter(([path]) => path.startsWith('test-vectors/'))
      .reduce((sum, [, f]) => sum + f.bytes, 0);
    const variant = manifest.variants[0];
    expect(variant).toBeDefined();
    expect(vectorBytes).toBeGreaterThan(0);
    expect(vectorBytes).toBeLessThanOrEqual(testVectorBudget([variant?.bytes ?? 0]));
    const cases = manifest.testVectors?.cases ?? [];
    expect(cases.length).toBeGreaterThan(0);
    for (const c of cases) expect(Object.keys(c.elements ?? {})).toEqual(Object.keys(c.outputs));
  });

  it('passes the self-test as compiled, and fails it once the variant is corrupted (hashes updated)', async () => {
    const good = await selfTest(artifact, options);
    expect(good.model.variant.id).toBe(manifest.variants[0]?.id);
    await good.model.release();
    // Overwrite 64 KiB in the middle of the weights (raw float data: the file still parses), then re-hash.
    const variant = manifest.variants[0];
    if (variant === undefined) throw new Error('no variant');
    const file = join(artifact, variant.file);
    const handle = await open(file, 'r+');
    await handle.write(Buffer.alloc(64 * 1024, 0x41), 0, 64 * 1024, Math.floor(variant.bytes / 2));
    await handle.close();
    const digest = await sha256File(file);
    const edited = structuredClone(manifest);
    edited.files[variant.file] = { sha256: digest.sha256, bytes: digest.bytes };
    Object.assign(edited.variants[0] ?? {}, { sha256: digest.sha256 });
    await writeFile(join(artifact, 'manifest.json'), prettyJson(edited));
    await expect(selfTest(artifact, options)).rejects.toMatchObject({ code: 'SELF_TEST_FAILED' });
  });

  it('samples distinct ascending indices whose values are the output at those indices', () => {
    const data = Float32Array.from({ length: 1_000_000 }, (_, i) => i);
    const [v] = boundTestVectors(
      [
        {
          feeds: { x: { data: new Float32Array(4), dims: [1, 4] } },
          outputs: { y: { type: 'float32', dims: [1, 1_000_000], data } },
        },
      ],
      MIN_TEST_VECTOR_BUDGET,
    );
    const indices = v?.elements?.y;
    const values = v?.outputs.y?.data as Float32Array;
    expect(indices).toBeDefined();
    expect(indices?.length).toBe(values.length);
    expect(values.byteLength + (indices?.byteLength ?? 0)).toBeLessThanOrEqual(MIN_TEST_VECTOR_BUDGET);
    const list = Array.from(indices ?? []);
    expect(list.every((x, i) => i === 0 || x > (list[i - 1] ?? 0))).toBe(true);
    expect(Array.from(values.slice(0, 5))).toEqual(Array.from(indices?.slice(0, 5) ?? []));
  });
});
