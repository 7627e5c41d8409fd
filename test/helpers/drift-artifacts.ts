import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compile } from '../../compiler/compile.js';
import { saveModel } from '../../compiler/onnx/index.js';
import { buildMlp } from '../../models/samples.js';
import { encodeNpy } from '../../runtime/tensor/index.js';

/**
 * The sample MLP (x: [batch, 16]) compiled with a drift baseline drawn from N(0, 1), and live inputs drawn like it
 * or with a shifted mean: what the drift tests feed a real agent.
 */
export const MLP_FEATURES = 16;

/** Normal draws (Box–Muller) from a seeded source: the "training data" and the live traffic alike. */
export function draw(random: () => number, mean = 0): Float32Array {
  const out = new Float32Array(MLP_FEATURES);
  for (let i = 0; i < MLP_FEATURES; i++)
    out[i] = mean + Math.sqrt(-2 * Math.log(Math.max(1e-12, random()))) * Math.cos(2 * Math.PI * random());
  return out;
}

export async function npyDir(dir: string, count: number, random: () => number): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++)
    await writeFile(
      join(dir, `x${i}.npy`),
      encodeNpy({ dtype: 'float32', shape: [1, MLP_FEATURES], data: draw(random) }),
    );
  return dir;
}

/** A signed fp32 artifact of the MLP at `version` with baseline.json from `baselineCount` N(0, 1) draws. */
export async function mlpArtifact(
  dir: string,
  version: string,
  signKey: string,
  random: () => number,
  baselineCount = 400,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const model = join(dir, 'mlp.onnx');
  await saveModel(buildMlp().proto, model);
  const output = join(dir, `mlp-${version}`);
  await compile({
    model,
    target: 'x86_64:avx512-vnni',
    output,
    name: 'mlp',
    version,
    precision: 'fp32',
    calibration: await npyDir(join(dir, 'calibration'), 16, random),
    baseline: await npyDir(join(dir, 'baseline'), baselineCount, random),
    signKey,
  });
  return output;
}

/** One OIP call to the agent's local endpoint with an input drawn around `mean`; resolves to the HTTP status. */
export async function callMlp(http: string, random: () => number, mean: number): Promise<number> {
  const body = { inputs: [{ name: 'x', shape: [1, MLP_FEATURES], datatype: 'FP32', data: [...draw(random, mean)] }] };
  const res = await fetch(`${http}/v2/models/mlp/infer`, { method: 'POST', body: JSON.stringify(body) });
  await res.arrayBuffer();
  return res.status;
}
