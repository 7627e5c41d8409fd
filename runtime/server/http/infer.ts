import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Feeds, Model } from '../../model/model.js';
import { BINARY_CONTENT_TYPE, HEADER_LENGTH_HEADER, parseHeaderLength, splitBody } from '../protocol/binary.js';
import { HttpError } from './status.js';
import { readBody, responseOpen, sendParts } from './io.js';
import { decodeInputs } from '../protocol/inputs.js';
import { servingPipeline, type ServingPipeline } from '../serving/pipeline.js';
import { parseInferRequest, parseOutputs, type InferRequest, type RequestedOutput } from '../protocol/request.js';
import { encodeInferResponse } from '../protocol/response.js';
import type { ModelService } from '../serving/service.js';

export interface InferTarget {
  readonly service: ModelService;
  /** The version the request's inputs are checked against (the one asked for, or a weighted draw). */
  readonly model: Model;
  /** The version named in the path, if any. */
  readonly version: string | undefined;
  readonly maxBodyBytes: number;
  /** Answers above this are refused (400 RESPONSE_TOO_LARGE) before they are fully encoded. */
  readonly maxResponseBytes: number;
}

const IMAGE_TYPE = /^image\/[\w.+-]+\s*(;|$)/i;

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'the request body (or its JSON header) is not valid JSON', 'INPUT_INVALID');
  }
}

/**
 * What an image body asks for, in the query string (an image body has no JSON to say it in): `outputs=a,b` (default:
 * the artifact's declared answer) and `binary_data_output=true` (default false), as the JSON request's fields.
 */
function imageOutputs(req: IncomingMessage, pipeline: ServingPipeline): RequestedOutput[] {
  const query = new URL(req.url ?? '/', 'http://localhost').searchParams;
  const flag = query.get('binary_data_output');
  if (flag !== null && flag !== 'true' && flag !== 'false')
    throw new HttpError(400, `binary_data_output must be true or false, got "${flag}"`, 'INPUT_INVALID');
  const names = query.getAll('outputs').flatMap((v) => v.split(',').filter((n) => n !== ''));
  const context = { inputs: [], outputNames: pipeline.outputNames };
  return parseOutputs(
    names.length === 0 ? undefined : names.map((name) => ({ name })),
    flag === 'true',
    context,
    pipeline.answerNames,
  );
}

/** An image body (`Content-Type: image/*`): the whole body is the image input; the query string picks the outputs. */
async function imageRequest(req: IncomingMessage, target: InferTarget, pipeline: ServingPipeline) {
  const input = pipeline.image?.input;
  if (input === undefined) {
    throw new HttpError(
      415,
      `model ${target.model.name} declares no image pre-processing; send an inference request (JSON, or binary tensors)`,
      'UNSUPPORTED_MEDIA_TYPE',
    );
  }
  const outputs = imageOutputs(req, pipeline); // a bad query is a 400 before the body is read
  const body = await readBody(req, target.maxBodyBytes);
  const request: InferRequest = { inputs: [], outputs };
  return { request, feeds: { [input]: await pipeline.images([body]) } };
}

/**
 * The part of a tensor request that needs no socket: the body's bytes (and the Inference-Header-Content-Length
 * header's value, when the request had one) → the checked request and the model's feeds. Every problem is a 4xx.
 */
export async function parseTensorBody(
  body: Buffer,
  headerValue: string | readonly string[] | undefined,
  model: Model,
  pipeline: ServingPipeline,
): Promise<{ request: InferRequest; feeds: Feeds }> {
  const { header, binary } =
    headerValue !== undefined ? splitBody(body, headerValue) : { header: body, binary: undefined };
  const context = { inputs: model.inputs, outputNames: pipeline.outputNames };
  const request = parseInferRequest(parseJson(header), binary, context);
  return { request, feeds: await decodeInputs(request, pipeline) };
}

/** An Open Inference Protocol body: JSON, or (with Inference-Header-Content-Length) a JSON header and binary data. */
async function tensorRequest(req: IncomingMessage, target: InferTarget, pipeline: ServingPipeline) {
  const headerValue = req.headers[HEADER_LENGTH_HEADER];
  const alignAt = headerValue === undefined ? 0 : (parseHeaderLength(headerValue) ?? 0);
  const body = await readBody(req, target.maxBodyBytes, alignAt);
  return parseTensorBody(body, headerValue, target.model, pipeline);
}

/**
 * POST /v2/models/{name}[/versions/{v}]/infer: read → parse → decode → service (version, scheduler, model) →
 * post-process → respond. A client that disconnects is noticed before the answer is encoded and before it is
 * written: the inference may finish, but nothing is written to a closed socket.
 */
export async function handleInfer(req: IncomingMessage, res: ServerResponse, target: InferTarget): Promise<void> {
  const pipeline = await servingPipeline(target.model);
  const { request, feeds } = IMAGE_TYPE.test(req.headers['content-type'] ?? '')
    ? await imageRequest(req, target, pipeline)
    : await tensorRequest(req, target, pipeline);
  // The request was checked against target.model (drawn by weight when no version was named): it runs there.
  // A client that leaves while the request waits for its turn takes it out of the queue (REQUEST_CANCELLED, 499).
  const gone = new AbortController();
  const leave = (): void => {
    if (!res.writableFinished) gone.abort();
  };
  res.once('close', leave);
  let result: Awaited<ReturnType<typeof target.service.infer>>;
  try {
    result = await target.service.infer(feeds, target.version, target.model, gone.signal);
  } finally {
    res.off('close', leave);
  }
  if (!responseOpen(res)) return;
  const served = result.model === target.model ? pipeline : await servingPipeline(result.model);
  const outputs = served.wantsPostprocess(request.outputs)
    ? { ...result.outputs, ...served.postprocess(result.outputs) }
    : result.outputs;
  const response = encodeInferResponse(result.model, request, outputs, target.maxResponseBytes);
  if (response.parts.length === 0) {
    sendParts(res, 200, { 'content-type': 'application/json' }, [response.header]);
    return;
  }
  // Extension: "the Inference-Header-Content-Length header must be provided to give the length of the JSON object".
  sendParts(res, 200, { 'content-type': BINARY_CONTENT_TYPE, [HEADER_LENGTH_HEADER]: response.header.byteLength }, [
    response.header,
    ...response.parts,
  ]);
}
