/**
 * server.ts, part 1: HTTP latency added over in-process on a tiny model (the sample MLP), same process, same
 * model: Model.infer and ModelService.infer against POST /infer over a keep-alive agent, TCP 127.0.0.1 and a unix
 * socket, subjects interleaved round by round, with a bare node:http server as the floor.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
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
  type Target,
} from './client.js';
import { serve, type BatchingConfig } from './child.js';

/**
 * The floor: a bare node:http server on 127.0.0.1 that reads the body and answers with fixed bytes (Outpost's own
 * reply to the same request), no parsing, no model. What is left above it is the Outpost server's own cost.
 */
async function bareServer(reply: Buffer): Promise<{ server: Server; url: string }> {
  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': reply.length });
      res.end(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export type TinyLatency = Awaited<ReturnType<typeof tinyLatency>>;

/** The MLP at `mlpPath` in-process and over HTTP; `dir` holds the unix socket. */
export async function tinyLatency(mlpPath: string, dir: string, plan: RoundPlan, batchingConfig: BatchingConfig) {
  const model = await loadModel(mlpPath, { warmup: 10 });
  const batchedModel = await loadModel(mlpPath, { warmup: 10 });
  const direct = await serve([model], 'direct', batchingConfig, [{ tcp: true }, { socket: join(dir, 'outpost.sock') }]);
  const batched = await serve([batchedModel], 'batching', batchingConfig, [{ tcp: true }]);
  try {
    const data = floats(16, 1);
    const feeds: Feeds = { x: { data, dims: [1, 16], type: 'float32' } };
    const service = direct.repository.service('mlp');
    if (service === undefined) throw new Error('mlp is not served');
    const [tcp, unix, batching] = [direct.urls[0], direct.urls[1], batched.urls[0]].map((u) => target(u ?? '', 1)) as [
      Target,
      Target,
      Target,
    ];
    const json = jsonCall('mlp', 'x', [1, 16], data);
    const binary = binaryCall('mlp', 'x', [1, 16], data);
    const expected = (await model.infer(feeds)).logits?.data as Float32Array;
    const reply = await ok(tcp, json);
    sameAs(expected, firstOutput(reply), 'MLP over HTTP JSON');
    const bare = await bareServer(reply.body);
    const floor = target(bare.url, 1);
    sameAs(expected, firstOutput(await ok(unix, binary)), 'MLP over HTTP binary');
    const stats = await interleaved(
      [
        { name: 'Model.infer', run: () => model.infer(feeds) },
        { name: 'ModelService.infer', run: () => service.infer(feeds) },
        { name: 'HTTP JSON, TCP', run: () => ok(tcp, json) },
        { name: 'HTTP JSON, unix socket', run: () => ok(unix, json) },
        { name: 'HTTP binary, TCP', run: () => ok(tcp, binary) },
        { name: 'bare node:http, TCP (floor)', run: () => ok(floor, json) },
      ],
      plan,
    );
    bare.server.closeAllConnections();
    await new Promise((resolve) => bare.server.close(resolve));
    // A lone request on the batching scheduler waits maxQueueDelayMs for company: measured apart, fewer calls.
    const lone = await interleaved([{ name: 'HTTP JSON, TCP, batching', run: () => ok(batching, json) }], {
      ...plan,
      perRound: Math.ceil(plan.perRound / 10),
    });
    for (const t of [tcp, unix, batching, floor]) t.agent.destroy();
    const base = stat(stats, 'Model.infer');
    const added = (name: string) => ({
      p50_ms: round3(stat(stats, name).p50 - base.p50),
      p99_ms: round3(stat(stats, name).p99 - base.p99),
    });
    return {
      model: 'sample MLP x[1,16]',
      subjects: Object.fromEntries([...stats, ...lone].map(([name, s]) => [name, brief(s)])),
      added_over_model_infer: {
        json_tcp: added('HTTP JSON, TCP'),
        json_unix: added('HTTP JSON, unix socket'),
        binary_tcp: added('HTTP binary, TCP'),
        node_http_floor: added('bare node:http, TCP (floor)'),
        service: added('ModelService.infer'),
        json_tcp_batching: {
          p50_ms: round3(stat(lone, 'HTTP JSON, TCP, batching').p50 - base.p50),
          p99_ms: round3(stat(lone, 'HTTP JSON, TCP, batching').p99 - base.p99),
        },
      },
    };
  } finally {
    await direct.close();
    await batched.close();
    await model.release();
    await batchedModel.release();
  }
}
