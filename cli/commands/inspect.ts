import type { Command } from 'commander';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  loadOnnxModel as loadOnnx,
  mainGraph,
  opHistogram,
  opsets,
  parameterCount,
  valueTypes,
} from '../../compiler/index.js';
import { openArtifact, type Manifest, type TensorSpec } from '../../runtime/artifact/index.js';
import { fromFsError } from '../../runtime/errors.js';
import { readBaseline, type Baseline } from '../../runtime/monitor/index.js';
import { collect } from '../options.js';
import { formatBytes, print, printJson, table } from '../output.js';

interface InspectOptions {
  json?: boolean;
  trustKey?: string[];
}

/** What the ONNX file itself says: opsets, op histogram, parameter count. */
interface GraphSummary {
  opsets: Record<string, number>;
  ops: Record<string, number>;
  nodes: number;
  parameters: number;
  producer: string;
  irVersion: number;
}

async function summarise(path: string): Promise<GraphSummary> {
  const model = await loadOnnx(path, { externalData: 'lazy' });
  const ops = Object.fromEntries([...opHistogram(model.proto)].sort((a, b) => b[1] - a[1]));
  return {
    opsets: Object.fromEntries(opsets(model.proto)),
    ops,
    nodes: mainGraph(model.proto).node.length,
    parameters: parameterCount(model.proto),
    producer: `${model.proto.producerName} ${model.proto.producerVersion}`.trim(),
    irVersion: Number(model.proto.irVersion),
  };
}

interface Inspection {
  kind: 'artifact' | 'model';
  path: string;
  bytes: number;
  name: string;
  version?: string;
  target?: Manifest['target'];
  signer?: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  graph?: GraphSummary;
  variants?: (Manifest['variants'][number] & { graph?: GraphSummary })[];
  pipeline?: Manifest['pipeline'];
  testVectors?: number;
  baseline?: Baseline;
  producer?: Manifest['producer'];
  /** A pipeline artifact's steps and models (docs/pipelines.md). */
  cascade?: Manifest['cascade'];
}

async function inspectArtifact(path: string, opts: InspectOptions): Promise<Inspection> {
  const artifact = await openArtifact(path, { trustedKeys: opts.trustKey });
  try {
    const { manifest } = artifact;
    const variants = [];
    for (const variant of manifest.variants) {
      const graph = variant.format === 'onnx' ? await summarise(join(artifact.dir, variant.file)) : undefined;
      variants.push({ ...variant, graph });
    }
    return {
      kind: 'artifact',
      path,
      // Everything the artifact holds: the files the manifest covers (the manifest itself aside).
      bytes: Object.values(manifest.files).reduce((sum, f) => sum + f.bytes, 0),
      name: manifest.name,
      version: manifest.version,
      target: manifest.target,
      signer: artifact.signer,
      inputs: manifest.inputs,
      outputs: manifest.outputs,
      variants,
      pipeline: manifest.pipeline,
      testVectors: manifest.testVectors?.cases.length ?? 0,
      ...(manifest.baseline === undefined ? {} : { baseline: await readBaseline(manifest, artifact.dir) }),
      producer: manifest.producer,
      ...(manifest.cascade === undefined ? {} : { cascade: manifest.cascade }),
    };
  } finally {
    await artifact.dispose();
  }
}

async function inspectModel(path: string, bytes: number): Promise<Inspection> {
  const model = await loadOnnx(path, { externalData: 'lazy' });
  const graph = mainGraph(model.proto);
  const types = valueTypes(graph);
  const initializers = new Set(graph.initializer.map((t) => t.name));
  const spec = (name: string): TensorSpec => {
    const t = types.get(name);
    const shape = (t?.shape ?? []).map((d, axis) => d ?? `${name}[${axis}]`);
    return { name, dtype: t?.dtype ?? 'float32', shape };
  };
  return {
    kind: 'model',
    path,
    bytes,
    name: graph.name,
    inputs: graph.input.filter((i) => !initializers.has(i.name)).map((i) => spec(i.name)),
    outputs: graph.output.map((o) => spec(o.name)),
    graph: await summarise(path),
  };
}

function printInspection(i: Inspection): void {
  print(`${i.kind} ${i.path}  (${formatBytes(i.bytes)})`);
  print(`  name     ${i.name}${i.version === undefined ? '' : `@${i.version}`}`);
  if (i.target !== undefined)
    print(`  target   ${i.target.profile} (${i.target.arch}${i.target.cpu === undefined ? '' : `, ${i.target.cpu}`})`);
  if (i.kind === 'artifact') print(`  signed   ${i.signer ?? 'no (or not checked: pass --trust-key)'}`);
  const io = (label: string, specs: readonly TensorSpec[]) => {
    for (const s of specs) print(`  ${label}  ${s.name}  ${s.dtype}[${s.shape.join(', ')}]`);
  };
  io('input ', i.inputs);
  io('output', i.outputs);
  const graphLines = (g: GraphSummary, indent: string) => {
    print(
      `${indent}opsets   ${Object.entries(g.opsets)
        .map(([d, v]) => `${d === '' ? 'ai.onnx' : d}:${v}`)
        .join(' ')}`,
    );
    print(
      `${indent}params   ${g.parameters.toLocaleString('en-US')}   nodes ${g.nodes}   ir ${g.irVersion}   producer ${g.producer || '?'}`,
    );
    print(
      `${indent}ops      ${Object.entries(g.ops)
        .map(([op, n]) => `${op}×${n}`)
        .join(' ')}`,
    );
  };
  if (i.graph !== undefined) graphLines(i.graph, '  ');
  if (i.variants !== undefined) {
    print('');
    print(
      table(
        ['variant', 'precision', 'format', 'rank', 'backends', 'size', 'sha256'],
        i.variants.map((v) => [
          v.id,
          v.precision,
          v.format,
          v.rank,
          v.backends.join(','),
          formatBytes(v.bytes),
          v.sha256.slice(0, 16),
        ]),
      ),
    );
    for (const v of i.variants) {
      if (v.graph === undefined) continue;
      print(`\n  ${v.id}:`);
      graphLines(v.graph, '    ');
    }
  }
  if (i.cascade !== undefined) printCascade(i.cascade);
  if (i.testVectors !== undefined) print(`\n  test vectors ${i.testVectors}`);
  if (i.baseline !== undefined) printBaseline(i.baseline);
}

/** The drift baseline: one row per feature (inputs, then outputs), then the class distributions. */
function printBaseline(b: Baseline): void {
  print(`\n  baseline  ${b.samples} samples (${b.source}), ${b.inputs.length + b.outputs.length} features`);
  const n = (v: number | undefined) => (v === undefined ? '' : Number(v.toPrecision(4)).toString());
  const rows = [...b.inputs.map((f) => ['input', f] as const), ...b.outputs.map((f) => ['output', f] as const)];
  print(
    table(
      ['side', 'feature', 'mean', 'std', 'p01', 'p50', 'p99', 'bins'],
      rows.map(([side, f]) => [
        side,
        f.feature,
        n(f.mean),
        n(f.std),
        n(f.quantiles.p01),
        n(f.quantiles.p50),
        n(f.quantiles.p99),
        f.histogram.counts.length,
      ]),
    ),
  );
  for (const c of b.classes) {
    const total = c.counts.reduce((a, x) => a + x, 0);
    const top = c.counts
      .map((count, id) => ({ id, share: total === 0 ? 0 : count / total }))
      .sort((a, x) => x.share - a.share)
      .slice(0, 5);
    print(`  classes ${c.output}: ${top.map((t) => `${t.id} ${(t.share * 100).toFixed(1)}%`).join(', ')}`);
  }
}

function printCascade(cascade: NonNullable<Manifest['cascade']>): void {
  print('\n  pipeline');
  print(
    table(
      ['step', 'runs', 'inputs', 'batch'],
      cascade.steps.map((s) => [
        s.id,
        s.transform ?? `model ${s.model ?? ''}`,
        Object.entries(s.inputs)
          .map(([k, v]) => `${k}←${v}`)
          .join(' '),
        s.batch ?? '',
      ]),
    ),
  );
  for (const [key, m] of Object.entries(cascade.models))
    print(`  model  ${key}  ${'dir' in m ? `bundled in ${m.dir}/` : `installed ${m.name}@${m.version}`}`);
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('show an artifact or model: inputs, outputs, opsets, ops, parameters, variants and hashes')
    .argument('<artifact|model>', 'artifact directory or .tar.gz, or a .onnx file')
    .option('--trust-key <pem>', 'check the signature against this public key (repeatable)', collect)
    .option('--json', 'print JSON')
    .action(async (path: string, opts: InspectOptions) => {
      const info = await stat(path).catch((error: unknown) => {
        throw fromFsError(error, path, 'read');
      });
      const isArtifact = info.isDirectory() || /\.(tar\.gz|tgz)$/.test(path);
      const result = isArtifact ? await inspectArtifact(path, opts) : await inspectModel(path, info.size);
      if (opts.json === true) printJson(result);
      else printInspection(result);
    });
}
