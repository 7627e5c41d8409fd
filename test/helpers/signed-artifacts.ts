import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { GraphBuilder, saveModel } from '../../compiler/onnx/index.js';
import { buildCnn, OPSET } from '../../models/samples.js';
import { generateSigningKeys } from '../../runtime/artifact/index.js';
import { expect } from 'vitest';
import { FLEET_IDENTITY, type TestBroker } from './broker.js';

export interface Keys {
  readonly privateKeyPem: string;
  readonly publicKeyPath: string;
}

export async function signingKeys(dir: string, name: string): Promise<Keys> {
  const keys = generateSigningKeys();
  const publicKeyPath = join(dir, `${name}.pub`);
  await writeFile(publicKeyPath, keys.publicKeyPem);
  return { privateKeyPem: keys.privateKeyPem, publicKeyPath };
}

/** A real compiled artifact of the sample CNN for this host's arch (int8 + fp32, ranked for the device to choose). */
export async function cnnArtifact(
  dir: string,
  version: string,
  keys: Keys,
  options: { precision?: 'fp32' | 'auto' } = {},
): Promise<string> {
  const model = join(dir, 'cnn.onnx');
  await saveModel(buildCnn().proto, model);
  const out = join(dir, `cnn-${version}`);
  await compile({
    model,
    target: 'x86_64:avx512-vnni',
    output: out,
    name: 'cnn',
    version,
    signKey: keys.privateKeyPem,
    precision: options.precision ?? 'fp32',
    overwrite: true,
  });
  return out;
}

/**
 * A real compiled two-variant artifact (int8 rank 1, fp32 rank 2) of an MLP whose weights dwarf its test vectors
 * (`inWidth` × `hidden` float32: 2 MiB by default), so the bytes a device fetches are mostly its variant's, as for a
 * real CNN; the sample CNN's 29 KB int8 variant is smaller than its test vectors. Weights are deterministic.
 */
export async function mlpArtifact(
  dir: string,
  version: string,
  keys: Keys,
  size: { inWidth?: number; hidden?: number } = {},
): Promise<string> {
  const inWidth = size.inWidth ?? 512;
  const hidden = size.hidden ?? 1024;
  const g = new GraphBuilder('mlp');
  const x = g.input('x', 'float32', [1, inWidth]);
  const w1 = g.initializer(
    'w1',
    Float32Array.from({ length: inWidth * hidden }, (_, i) => Math.sin(i * 12.9898) * 0.05),
    [inWidth, hidden],
  );
  const w2 = g.initializer(
    'w2',
    Float32Array.from({ length: hidden * 10 }, (_, i) => Math.cos(i) * 0.05),
    [hidden, 10],
  );
  g.output(g.node('MatMul', [g.node('Relu', [g.node('MatMul', [x, w1])]), w2]), 'float32', [1, 10]);
  const model = join(dir, 'mlp.onnx');
  await mkdir(dir, { recursive: true });
  await saveModel(g.build({ opsets: { '': 17 } }), model);
  const out = join(dir, `mlp-${version}`);
  await compile({
    model,
    target: 'x86_64:avx512-vnni',
    output: out,
    name: 'mlp',
    version,
    signKey: keys.privateKeyPem,
    precision: 'auto',
    // About delivery, not accuracy: a loose budget keeps int8 (4× smaller) in the running on these weights.
    budget: { cosine: 0.9 },
    allowAccuracyLoss: true,
    overwrite: true,
  });
  return out;
}

/**
 * A compiled artifact of a model that passes its self-test but fails on some production inputs: y = table[int(x)]
 * with a 10-entry table, so x ≥ 10 makes ONNX Runtime's Gather fail (INFERENCE_FAILED) — a real bad release.
 */
export async function lookupArtifact(dir: string, version: string, keys: Keys): Promise<string> {
  const g = new GraphBuilder('lookup');
  const table = g.initializer(
    'table',
    Float32Array.from({ length: 10 }, (_, i) => i * 1.5),
    [10],
  );
  const index = g.node('Cast', [g.input('x', 'float32', [1])], { to: 7 }); // 7: INT64
  g.output(g.node('Gather', [table, index]), 'float32', [1]);
  const model = join(dir, 'lookup.onnx');
  await saveModel(g.build({ opsets: { '': OPSET } }), model);
  const out = join(dir, `lookup-${version}`);
  await compile({
    model,
    target: 'x86_64:avx512-vnni',
    output: out,
    name: 'lookup',
    version,
    signKey: keys.privateKeyPem,
    precision: 'fp32',
    overwrite: true,
  });
  return out;
}

/** Agent flags for `thing` over the broker's mTLS listener, as the ACL confines it. */
export async function agentArgs(broker: TestBroker, thing: string, trust: string, config?: string): Promise<string[]> {
  const id = await broker.identity(thing);
  return [
    '--thing',
    thing,
    '--broker',
    broker.urls.mtls,
    '--ca',
    broker.ca.caPath,
    '--cert',
    id.certPath,
    '--key',
    id.keyPath,
    '--trust-key',
    trust,
    '--http-port',
    '0',
    ...(config === undefined ? [] : ['--config', config]),
  ];
}

/** The fleet's connection settings (its own certificate, with the ACL's fleet rights). */
export async function fleetTls(broker: TestBroker) {
  const id = await broker.identity(FLEET_IDENTITY);
  return { ca: broker.ca.caPath, cert: id.certPath, key: id.keyPath };
}

/**
 * A bigger artifact (an MLP with ~4 MB of weights: ~64 blocks of 64 KiB) so a download can be stopped half-way.
 */
export async function bigArtifact(dir: string, version: string, keys: Keys): Promise<string> {
  const { GraphBuilder } = await import('../../compiler/onnx/index.js');
  const g = new GraphBuilder('big');
  const x = g.input('x', 'float32', [1, 512]);
  const w1 = g.initializer(
    'w1',
    Float32Array.from({ length: 512 * 2048 }, (_, i) => Math.sin(i) * 0.05),
    [512, 2048],
  );
  const w2 = g.initializer(
    'w2',
    Float32Array.from({ length: 2048 * 10 }, (_, i) => Math.cos(i) * 0.05),
    [2048, 10],
  );
  g.output(g.node('MatMul', [g.node('Relu', [g.node('MatMul', [x, w1])]), w2]), 'float32', [1, 10]);
  const model = join(dir, 'big.onnx');
  await saveModel(g.build({ opsets: { '': 17 } }), model);
  const out = join(dir, `big-${version}`);
  await compile({
    model,
    target: 'x86_64:avx512-vnni',
    output: out,
    name: 'big',
    version,
    signKey: keys.privateKeyPem,
    precision: 'fp32',
    overwrite: true,
  });
  return out;
}

/** One inference of the sample CNN (a flat image of `value`) through an agent's endpoint; the version that answered. */
export async function inferCnnVersion(http: string, value = 0.5): Promise<string> {
  const response = await fetch(`${http}/v2/models/cnn/infer`, {
    method: 'POST',
    body: JSON.stringify({
      inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', data: new Array(3 * 64 * 64).fill(value) }],
    }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { model_version: string }).model_version;
}
