import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { TensorProtoSchema } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { compile } from '../../compiler/compile.js';
import type { Evaluator } from '../../compiler/evaluate/evaluator.js';
import { tensorToArray } from '../../compiler/onnx/index.js';
import { verifyArtifact } from '../../runtime/artifact/index.js';
import { isOutpostError, messageOf } from '../../runtime/errors.js';
import type { TensorData } from '../../runtime/tensor/dtype.js';

/**
 * The ONNX backend test data (onnx/backend/test/data, packaged by Debian as libonnx-testdata) through
 * `outpost compile --target host --precision fp32`: each test is a model plus input_N.pb / output_N.pb TensorProtos.
 * Only tests raw onnxruntime-node passes on the original model count; each of those then compiles and matches the
 * expected outputs with raw onnxruntime-node on the compiled variant, or is refused with a typed error, or crashes
 * (an untyped error), or gives a different answer.
 */
export const TESTDATA_ROOT = '/usr/share/libonnx-testdata/data';
export const FAMILIES = Object.freeze(['node', 'simple', 'pytorch-converted', 'pytorch-operator']);

/** onnx/backend/test/runner: numpy.testing.assert_allclose(rtol=1e-3, atol=1e-7) unless a test says otherwise. */
export const TOLERANCE = Object.freeze({ rtol: 1e-3, atol: 1e-7 });

export interface TestCase {
  readonly family: string;
  readonly name: string;
  readonly dir: string;
}

export type Outcome =
  | { readonly kind: 'raw-fails'; readonly why: string }
  | { readonly kind: 'match'; readonly format: string; readonly graded: boolean }
  | { readonly kind: 'refused'; readonly code: string; readonly message: string }
  | { readonly kind: 'crash'; readonly message: string }
  | { readonly kind: 'different'; readonly why: string };

type Tensors = { name: string; dtype: string; dims: number[]; data: TensorData }[];

export async function listCases(root = TESTDATA_ROOT, families: readonly string[] = FAMILIES): Promise<TestCase[]> {
  const cases: TestCase[] = [];
  for (const family of families) {
    const dir = join(root, family);
    if (!existsSync(dir)) continue;
    for (const name of (await readdir(dir)).sort()) {
      if (existsSync(join(dir, name, 'model.onnx'))) cases.push({ family, name, dir: join(dir, name) });
    }
  }
  return cases;
}

async function readSet(dir: string, prefix: 'input' | 'output'): Promise<Tensors> {
  const files = (await readdir(dir))
    .filter((f) => f.startsWith(`${prefix}_`) && f.endsWith('.pb'))
    .sort((a, b) => Number(a.slice(prefix.length + 1, -3)) - Number(b.slice(prefix.length + 1, -3)));
  const out: Tensors = [];
  for (const f of files) {
    // A SequenceProto or OptionalProto does not parse as a TensorProto with data: those tests are not counted.
    const t = tensorToArray(fromBinary(TensorProtoSchema, await readFile(join(dir, f))));
    out.push({ name: '', dtype: t.dtype, dims: t.dims, data: t.data });
  }
  return out;
}

async function dataSets(c: TestCase): Promise<{ inputs: Tensors; outputs: Tensors }[]> {
  const sets = (await readdir(c.dir)).filter((d) => d.startsWith('test_data_set')).sort();
  return Promise.all(
    sets.map(async (s) => ({
      inputs: await readSet(join(c.dir, s), 'input'),
      outputs: await readSet(join(c.dir, s), 'output'),
    })),
  );
}

function close(actual: TensorData, expected: TensorData): string | undefined {
  if (actual.length !== expected.length) return `${actual.length} values, expected ${expected.length}`;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (typeof e === 'string' || typeof a === 'string') {
      if (a !== e) return `[${i}] = ${String(a)}, expected ${String(e)}`;
      continue;
    }
    const x = Number(a);
    const y = Number(e);
    if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
    if (!(Math.abs(x - y) <= TOLERANCE.atol + TOLERANCE.rtol * Math.abs(y))) return `[${i}] = ${x}, expected ${y}`;
  }
  return undefined;
}

/** Runs `modelPath` on every data set with raw onnxruntime-node; undefined when every output matches. */
async function rawRun(modelPath: string, sets: Awaited<ReturnType<typeof dataSets>>): Promise<string | undefined> {
  const session = await ort.InferenceSession.create(modelPath, { logSeverityLevel: 4 });
  try {
    for (const set of sets) {
      const feeds: Record<string, ort.Tensor> = {};
      set.inputs.forEach((t, i) => {
        const name = session.inputNames[i];
        if (name === undefined) return;
        const Tensor = ort.Tensor as unknown as new (type: string, data: unknown, dims: number[]) => ort.Tensor;
        feeds[name] = new Tensor(t.dtype, t.data, t.dims);
      });
      const outputs = await session.run(feeds);
      for (const [i, expected] of set.outputs.entries()) {
        const actual = outputs[session.outputNames[i] ?? ''];
        if (actual === undefined) return `no output ${i}`;
        const why = close(actual.data, expected.data);
        if (why !== undefined) return `${session.outputNames[i] ?? i}${why}`;
      }
    }
    return undefined;
  } finally {
    await session.release();
  }
}

export interface RunOptions {
  /** Seconds each model run may take inside the compile. */
  readonly budgetSeconds: number;
  readonly evaluator?: Evaluator;
}

/** One test: raw ORT on the original, then compile, then raw ORT on the compiled variant. */
export async function runCase(c: TestCase, options: RunOptions): Promise<Outcome> {
  let sets;
  try {
    sets = await dataSets(c);
    const raw = await rawRun(join(c.dir, 'model.onnx'), sets);
    if (raw !== undefined) return { kind: 'raw-fails', why: raw };
  } catch (error) {
    return { kind: 'raw-fails', why: messageOf(error) };
  }
  const dir = await mkdtemp(join(tmpdir(), 'outpost-conformance-'));
  try {
    const out = join(dir, 'artifact');
    let report;
    try {
      report = await compile({
        model: join(c.dir, 'model.onnx'),
        target: 'host',
        precision: 'fp32',
        output: out,
        runBudget: { seconds: options.budgetSeconds, memoryBytes: 4 * 2 ** 30 },
        ...(options.evaluator === undefined ? {} : { evaluator: options.evaluator }),
      });
    } catch (error) {
      return isOutpostError(error)
        ? { kind: 'refused', code: error.code, message: error.message }
        : { kind: 'crash', message: messageOf(error) };
    }
    const { manifest } = await verifyArtifact(out);
    for (const variant of manifest.variants) {
      const why = await rawRun(join(out, variant.file), sets).catch((error: unknown) => messageOf(error));
      if (why !== undefined) return { kind: 'different', why: `${variant.id} (${variant.format}): ${why}` };
    }
    const first = report.variants[0];
    return { kind: 'match', format: first?.format ?? '?', graded: first?.graded ?? false };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
