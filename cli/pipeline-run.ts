import { basename } from 'node:path';
import { OutpostError } from '../runtime/errors.js';
import { openPipeline, type Pipeline } from '../runtime/pipeline/index.js';
import { readBytes, readTensorFile, tensorToJson, type FeedMap } from '../runtime/tensor/index.js';
import type { TensorValue } from '../runtime/backends/index.js';
import { formatNumber, print, printJson, table } from './output.js';

/** An input a pipeline takes as encoded bytes (an image file as it is): uint8 of rank 1. */
function takesBytes(pipeline: Pipeline, name: string): boolean {
  const spec = pipeline.inputs.find((i) => i.name === name);
  return spec?.dtype === 'uint8' && spec.shape.length === 1;
}

/** `--input` values for a pipeline: `file` for its only input or `name=file`; a bytes input gets the file's bytes. */
export async function pipelineFeeds(pipeline: Pipeline, inputs: readonly string[]): Promise<FeedMap> {
  const feeds: FeedMap = {};
  for (const arg of inputs) {
    const eq = arg.indexOf('=');
    const named = eq > 0 && !arg.slice(0, eq).includes('/');
    const file = named ? arg.slice(eq + 1) : arg;
    const name = named ? arg.slice(0, eq) : pipeline.inputs.length === 1 ? pipeline.inputs[0]?.name : undefined;
    if (name === undefined) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `--input ${arg}: name the input (name=file); inputs: ${pipeline.inputs.map((i) => i.name).join(', ')}`,
      );
    }
    if (takesBytes(pipeline, name)) {
      const bytes = await readBytes(file);
      feeds[name] = {
        data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        dims: [bytes.byteLength],
        type: 'uint8',
      };
    } else Object.assign(feeds, await readTensorFile(file, pipeline.inputs, { name }));
  }
  return feeds;
}

function preview(tensor: TensorValue, count = 8): string {
  const values = Array.from(tensor.data as ArrayLike<number | bigint | string>).slice(0, count);
  const text = values.map((v) => (typeof v === 'number' ? formatNumber(v) : String(v))).join(', ');
  return tensor.data.length > count ? `${text}, … (${tensor.data.length} values)` : text;
}

/** `outpost run` on a pipeline artifact: one request through every step, the outputs and each step's time. */
export async function runPipelineCommand(
  path: string,
  opts: {
    input: string[];
    json?: boolean;
    trustKey?: string[];
    backend?: 'auto' | 'native' | 'wasm';
    threads?: number;
  },
): Promise<void> {
  const pipeline = await openPipeline(path, {
    ...(opts.trustKey === undefined ? {} : { trustedKeys: opts.trustKey }),
    ...(opts.backend === undefined ? {} : { backend: opts.backend }),
    ...(opts.threads === undefined ? {} : { threads: opts.threads }),
  });
  try {
    const feeds = await pipelineFeeds(pipeline, opts.input);
    const started = performance.now();
    const { outputs, timings } = await pipeline.run(feeds);
    const latencyMs = performance.now() - started;
    if (opts.json === true) {
      printJson({
        pipeline: pipeline.name,
        version: pipeline.version,
        latency_ms: latencyMs,
        steps_ms: timings,
        outputs: Object.fromEntries(Object.entries(outputs).map(([n, t]) => [n, tensorToJson(t)])),
      });
      return;
    }
    print(`${pipeline.name}@${pipeline.version}  pipeline  ${formatNumber(latencyMs)} ms  (${basename(path)})`);
    print(
      table(
        ['step', 'ms'],
        Object.entries(timings).map(([s, ms]) => [s, formatNumber(ms)]),
      ),
    );
    for (const [name, tensor] of Object.entries(outputs)) {
      if (tensor.type === 'string') {
        print(`  ${name}  string[${tensor.dims.join(', ')}]`);
        for (const line of tensor.data as string[]) print(`    ${JSON.stringify(line)}`);
      } else print(`  ${name}  ${tensor.type}[${tensor.dims.join(', ')}]  ${preview(tensor)}`);
    }
  } finally {
    await pipeline.release();
  }
}
