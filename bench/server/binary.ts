/**
 * server.ts, part 2: the binary tensor extension against JSON on a 1×3×224×224 FP32 input (a ReduceMean model,
 * so the model's own time is small and reported): end-to-end request latency with the bodies encoded beforehand, and
 * the encoding itself apart.
 */
import { join } from 'node:path';
import { GraphBuilder, saveModel } from '../../compiler/onnx/index.js';
import { OPSET } from '../../models/samples.js';
import { loadModel } from '../../runtime/model/load.js';
import type { Feeds } from '../../runtime/model/model.js';
import {
  binaryCall,
  brief,
  firstOutput,
  floats,
  interleaved,
  jsonCall,
  ok,
  round3,
  sameAs,
  stat,
  target,
  type RoundPlan,
} from './client.js';
import { serve, type BatchingConfig } from './child.js';

/** x FP32 [batch, 3, 224, 224] → mean FP32 [batch, 3]: an ImageNet-sized input, a cheap op. */
export async function probeModel(dir: string): Promise<string> {
  const g = new GraphBuilder('probe');
  const x = g.input('x', 'float32', ['batch', 3, 224, 224]);
  g.output(g.nodeOutputs('ReduceMean', [x], ['mean'], { axes: [2, 3], keepdims: 0 })[0] ?? '', 'float32', ['batch', 3]);
  const path = join(dir, 'probe.onnx');
  await saveModel(g.build({ opsets: { '': OPSET } }), path);
  return path;
}

export type BinaryVsJson = Awaited<ReturnType<typeof binaryVsJson>>;

/** The probe model at `probePath` in-process and over HTTP, JSON and binary bodies. */
export async function binaryVsJson(probePath: string, plan: RoundPlan, batching: BatchingConfig) {
  const model = await loadModel(probePath, { warmup: 3 });
  const served = await serve([model], 'direct', batching, [{ tcp: true }]);
  try {
    const dims = [1, 3, 224, 224];
    const data = floats(3 * 224 * 224, 2);
    const feeds: Feeds = { x: { data, dims, type: 'float32' } };
    const to = target(served.urls[0] ?? '', 1);
    const encode = await interleaved(
      [
        { name: 'encode JSON', run: () => Promise.resolve(jsonCall('probe', 'x', dims, data)) },
        { name: 'encode binary', run: () => Promise.resolve(binaryCall('probe', 'x', dims, data)) },
      ],
      { rounds: 1, perRound: plan.perRound, warmup: 1 },
    );
    const json = jsonCall('probe', 'x', dims, data);
    const binary = binaryCall('probe', 'x', dims, data);
    const expected = (await model.infer(feeds)).mean?.data as Float32Array;
    sameAs(expected, firstOutput(await ok(to, json)), 'probe over HTTP JSON');
    sameAs(expected, firstOutput(await ok(to, binary)), 'probe over HTTP binary');
    const stats = await interleaved(
      [
        { name: 'Model.infer', run: () => model.infer(feeds) },
        { name: 'HTTP JSON', run: () => ok(to, json) },
        { name: 'HTTP binary', run: () => ok(to, binary) },
      ],
      plan,
    );
    to.agent.destroy();
    return {
      model: 'ReduceMean x[1,3,224,224] → [1,3]',
      body_bytes: { json: json.body.length, binary: binary.body.length },
      subjects: Object.fromEntries([...stats, ...encode].map(([name, s]) => [name, brief(s)])),
      speedup_p50: round3(stat(stats, 'HTTP JSON').p50 / stat(stats, 'HTTP binary').p50),
    };
  } finally {
    await served.close();
    await model.release();
  }
}
