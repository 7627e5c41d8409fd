import { extname } from 'node:path';
import type { TensorSpec } from '../artifact/manifest.js';
import { OutpostError, messageOf } from '../errors.js';
import { IMAGE_EXTENSIONS, type Pipeline } from '../pipeline/index.js';
import { readBytes, readTensorFile, tensorToJson, tensorsFromJson, type FeedMap } from '../tensor/index.js';
import type { BatchResult, BatchRunner } from './runner.js';
import type { BatchItem } from './sources.js';

export interface PipelineRunnerOptions {
  /** Inputs run through the pipeline at once: each call runs its steps one after the other, so two overlap. */
  readonly concurrency?: number; // inputs
  /** `--input-shape`: shapes for flat tensor data. */
  readonly shapes?: Readonly<Record<string, readonly number[]>>;
}

export const PIPELINE_RUNNER_DEFAULTS = Object.freeze({
  // One input's steps are sequential (decode, det, crop, rec …); a second input in flight keeps both cores busy
  // while the first is in a transform on the event loop.
  concurrency: 2, // inputs
} satisfies PipelineRunnerOptions);

/** The input that takes encoded bytes as they are (an image file): uint8 of rank 1, as the server's image body. */
function bytesInput(inputs: readonly TensorSpec[]): string | undefined {
  return inputs.find((i) => i.dtype === 'uint8' && i.shape.length === 1)?.name;
}

const bytesFeed = (bytes: Uint8Array) => ({ data: bytes, dims: [bytes.byteLength], type: 'uint8' as const });

/** Keys of a `.jsonl` line that name it rather than carry a tensor. */
const LINE_KEYS: ReadonlySet<string> = new Set(['id', 'name', 'parameters']);

/**
 * A `.jsonl` request line → feeds: `{ "inputs": [ … ] }` or a map of input name → tensor, as for a model; an entry
 * for the bytes input may also be `"datatype": "BYTES"` with one base64 string (an image), as the server takes it.
 */
function requestFeeds(item: Extract<BatchItem, { kind: 'request' }>, pipeline: Pipeline): FeedMap {
  let value: unknown;
  try {
    value = JSON.parse(item.text);
  } catch (error) {
    throw new OutpostError('INPUT_INVALID', `${item.where}: not valid JSON: ${messageOf(error)}`);
  }
  const bytes = bytesInput(pipeline.inputs);
  const feeds: FeedMap = {};
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    if (Array.isArray(record.inputs)) {
      const rest = (record.inputs as unknown[]).filter((entry) => {
        const e = entry as { name?: unknown; datatype?: unknown; data?: unknown };
        const data = Array.isArray(e.data) ? (e.data as unknown[]) : [];
        if (bytes === undefined || e.name !== bytes || e.datatype !== 'BYTES' || typeof data[0] !== 'string')
          return true;
        feeds[bytes] = bytesFeed(new Uint8Array(Buffer.from(data[0], 'base64')));
        return false;
      });
      if (rest.length === 0) return feeds;
      value = { ...record, inputs: rest };
    } else value = Object.fromEntries(Object.entries(record).filter(([key]) => !LINE_KEYS.has(key)));
  }
  return { ...tensorsFromJson(value, item.where, pipeline.inputs), ...feeds };
}

/**
 * A pipeline behind the batch transform (runtime/pipeline): an image file goes whole to the pipeline's bytes input
 * (as `outpost run --input` and the server's image body), a `.npy`/`.json` file or a `.jsonl` request to its named
 * inputs. Each input runs every step; the cross-step batching (all crops of one image through the recogniser at
 * once) happens inside the pipeline, so `runs` counts pipeline runs, one per input.
 */
export class PipelineRunner implements BatchRunner {
  readonly subject: BatchRunner['subject'];
  readonly window: number;
  readonly runs = { runs: 0, inputs: 0 };
  private readonly bytes: string | undefined;
  private readonly running = new Set<Promise<unknown>>();

  constructor(
    private readonly pipeline: Pipeline,
    private readonly options: PipelineRunnerOptions = {},
  ) {
    const backends = [...new Set(Object.values(pipeline.models).map((m) => m.backend))];
    this.subject = {
      name: pipeline.name,
      version: pipeline.version,
      variant: 'pipeline',
      ...(backends.length === 0 ? {} : { backend: backends.join('+') }),
    };
    this.window = options.concurrency ?? PIPELINE_RUNNER_DEFAULTS.concurrency;
    this.bytes = bytesInput(pipeline.inputs);
  }

  private async feeds(item: BatchItem): Promise<FeedMap> {
    if (item.kind === 'request') return requestFeeds(item, this.pipeline);
    const ext = extname(item.path).toLowerCase();
    if (IMAGE_EXTENSIONS.has(ext)) {
      if (this.bytes === undefined) {
        throw new OutpostError(
          'INVALID_ARGUMENT',
          `${item.path}: pipeline ${this.pipeline.name} takes no encoded bytes input (uint8 of rank 1) for an image`,
        );
      }
      const data = await readBytes(item.path);
      return { [this.bytes]: bytesFeed(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) };
    }
    if (ext === '.json' || ext === '.npy')
      return await readTensorFile(item.path, this.pipeline.inputs, { shapes: this.options.shapes ?? {} });
    throw new OutpostError(
      'INPUT_INVALID',
      `${item.path}: unknown input format "${ext}"; use .json, .npy or an image (${[...IMAGE_EXTENSIONS].join(' ')})`,
    );
  }

  async run(item: BatchItem): Promise<BatchResult> {
    const feeds = await this.feeds(item);
    const running = this.pipeline.run(feeds);
    this.running.add(running);
    try {
      const { outputs } = await running;
      this.runs.runs++;
      this.runs.inputs++;
      return {
        outputs: Object.fromEntries(Object.entries(outputs).map(([name, tensor]) => [name, tensorToJson(tensor)])),
      };
    } finally {
      this.running.delete(running);
    }
  }

  /** Waits for the runs in flight; the pipeline itself stays the caller's to release. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }
}
