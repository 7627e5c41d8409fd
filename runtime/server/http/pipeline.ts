import type { IncomingMessage, ServerResponse } from 'node:http';
import { isOutpostError } from '../../errors.js';
import type { Pipeline } from '../../pipeline/graph/pipeline.js';
import type { TensorLike } from '../../tensor/tensor.js';
import { dtypeFromName, kserveDatatype, tensorToJson } from '../../tensor/json.js';
import type { PipelineMetrics } from '../metrics/pipelines.js';
import type { PipelineService } from '../serving/pipeline-service.js';
import { HttpError } from './status.js';
import { readBody, responseOpen, sendText } from './io.js';

const IMAGE_TYPE = /^image\/[\w.+-]+\s*(;|$)/i;

/** The pipeline's input for encoded bytes (uint8 of rank 1), where an image body goes. */
function bytesInput(pipeline: Pipeline): string | undefined {
  return pipeline.inputs.find((i) => i.dtype === 'uint8' && i.shape.length === 1)?.name;
}

/**
 * Inputs of a JSON request to a pipeline: `{ "inputs": [{ "name", "datatype", "shape", "data" }] }`; a bytes input
 * also takes `"datatype": "BYTES"` with one base64 string (an image, as the per-model image input takes it).
 */
function jsonFeeds(body: Buffer, pipeline: Pipeline): Record<string, TensorLike> {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the request body is not valid JSON', 'INPUT_INVALID');
  }
  const inputs = (raw as { inputs?: unknown }).inputs;
  if (!Array.isArray(inputs)) throw new HttpError(400, 'the request has no "inputs" array', 'INPUT_INVALID');
  const feeds: Record<string, TensorLike> = {};
  for (const input of inputs as { name?: unknown; datatype?: unknown; shape?: unknown; data?: unknown }[]) {
    const name = typeof input.name === 'string' ? input.name : '';
    const spec = pipeline.inputs.find((i) => i.name === name);
    if (spec === undefined) {
      throw new HttpError(
        400,
        `unknown input "${name}"; inputs: ${pipeline.inputs.map((i) => i.name).join(', ')}`,
        'INPUT_NAME_UNKNOWN',
      );
    }
    const data = Array.isArray(input.data) ? (input.data as unknown[]) : [];
    if (
      input.datatype === 'BYTES' &&
      spec.dtype === 'uint8' &&
      spec.shape.length === 1 &&
      typeof data[0] === 'string'
    ) {
      const bytes = Buffer.from(data[0], 'base64');
      feeds[name] = {
        data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        dims: [bytes.byteLength],
        type: 'uint8',
      };
      continue;
    }
    const dtype = dtypeFromName(String(input.datatype), `input "${name}"`);
    if (dtype !== spec.dtype) {
      throw new HttpError(
        400,
        `input "${name}": datatype ${kserveDatatype(dtype)}, expected ${kserveDatatype(spec.dtype)}`,
        'INPUT_DTYPE_MISMATCH',
      );
    }
    const shape = Array.isArray(input.shape) ? (input.shape as number[]) : [data.length];
    const flat = data.flat(32) as number[];
    feeds[name] = {
      data: dtype === 'uint8' ? Uint8Array.from(flat) : Float32Array.from(flat),
      dims: shape,
      type: dtype,
    };
  }
  return feeds;
}

/**
 * POST /v2/models/{pipeline}/infer: an image body (`Content-Type: image/*`, the whole body is the pipeline's bytes
 * input) or a JSON request → every step → the pipeline's outputs as Open Inference Protocol tensors (for OCR: `text`
 * as BYTES, one element per line top to bottom, with `boxes` and the scores). The version is the one named in the
 * path, else the service's weighted draw (canary); the service captures and mirrors it. Step times go to metrics.
 */
export async function handlePipelineInfer(
  req: IncomingMessage,
  res: ServerResponse,
  target: { service: PipelineService; pipeline: Pipeline; named: boolean },
  limits: { maxBodyBytes: number; maxResponseBytes: number; metrics?: PipelineMetrics },
): Promise<void> {
  const { service, pipeline, named } = target;
  const image = IMAGE_TYPE.test(req.headers['content-type'] ?? '');
  const input = bytesInput(pipeline);
  if (image && input === undefined) {
    throw new HttpError(
      415,
      `pipeline ${pipeline.name} takes no encoded bytes input; send a JSON request`,
      'UNSUPPORTED_MEDIA_TYPE',
    );
  }
  const body = await readBody(req, limits.maxBodyBytes);
  const feeds: Record<string, TensorLike> = image
    ? {
        [input as string]: {
          data: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
          dims: [body.byteLength],
          type: 'uint8',
        },
      }
    : jsonFeeds(body, pipeline);
  const started = performance.now();
  let result: Awaited<ReturnType<Pipeline['run']>>;
  try {
    result = await service.infer(feeds, pipeline, named);
  } catch (error) {
    limits.metrics?.failed(pipeline.name, pipeline.version, isOutpostError(error) ? error.code : 'INTERNAL', error);
    throw error;
  }
  limits.metrics?.succeeded(pipeline.name, pipeline.version, performance.now() - started, result.timings);
  if (!responseOpen(res)) return;
  const answer = JSON.stringify({
    model_name: pipeline.name,
    model_version: pipeline.version,
    outputs: Object.entries(result.outputs).map(([name, tensor]) => ({ name, ...tensorToJson(tensor) })),
    parameters: { steps_ms: result.timings },
  });
  // The server's response limit holds for pipelines too (../protocol/response.ts); their answers are small JSON.
  if (Buffer.byteLength(answer) > limits.maxResponseBytes) {
    throw new HttpError(
      400,
      `the answer of pipeline ${pipeline.name} would be ${Buffer.byteLength(answer)} bytes, over this server's ${limits.maxResponseBytes}-byte response limit`,
      'RESPONSE_TOO_LARGE',
    );
  }
  sendText(res, 200, answer, 'application/json');
}

/** GET /v2/models/{pipeline}: metadata in the model metadata's shape, `platform: "outpost-pipeline"`. */
export function pipelineMetadata(pipeline: Pipeline, versions: readonly string[]): unknown {
  const spec = (s: {
    name: string;
    dtype: Parameters<typeof kserveDatatype>[0];
    shape: readonly (number | string)[];
  }) => ({
    name: s.name,
    datatype: kserveDatatype(s.dtype),
    shape: s.shape.map((d) => (typeof d === 'number' ? d : -1)),
  });
  return {
    name: pipeline.name,
    versions,
    platform: 'outpost-pipeline',
    inputs: pipeline.inputs.map(spec),
    outputs: pipeline.outputs.map(spec),
    steps: pipeline.steps,
  };
}
