import { OutpostError } from '../../errors.js';
import type { Model } from '../../model/model.js';
import { parseTensorBody } from '../http/infer.js';
import { encodeInferResponse } from '../protocol/response.js';
import type { ModelService } from './service.js';
import { servingPipeline } from './pipeline.js';

/**
 * One Open Inference Protocol request as bytes in, its answer as bytes out, with no socket: what a transport other
 * than HTTP (the agent's MQTT requests, device-agent/serving/async-infer.ts) runs through the same service,
 * scheduler and batching as `POST /v2/models/{name}/infer`. Every problem throws the error HTTP would answer with.
 */
export interface MessageRequest {
  /** The JSON request, or (with `headerLength`) a JSON header followed by binary tensor data. */
  readonly body: Buffer;
  /** The binary extension's Inference-Header-Content-Length, when the request is in the binary form. */
  readonly headerLength?: number;
  /** Answers above this are refused with RESPONSE_TOO_LARGE before they are fully encoded. */
  readonly maxResponseBytes: number;
}

export interface MessageAnswer {
  /** The version that answered. */
  readonly model: Model;
  /** The response JSON (the header, when `parts` is not empty). */
  readonly header: Uint8Array;
  /** Binary output tensors after the header, in the order the header lists them; empty for an all-JSON answer. */
  readonly parts: readonly Uint8Array[];
}

/** A checked, decoded request: `run()` enters the version's scheduler at once (before its first await). */
export interface PreparedMessage {
  /** A `signal` that aborts while the request waits takes it out of the queue (REQUEST_CANCELLED). */
  run(signal?: AbortSignal): Promise<MessageAnswer>;
}

/**
 * Parses and decodes `request` against a version `service` draws; the caller decides when it enters the queue, so
 * requests prepared one after another enter it in that order.
 */
export async function prepareMessage(service: ModelService, request: MessageRequest): Promise<PreparedMessage> {
  const model = service.select();
  if (model === undefined)
    throw new OutpostError('MODEL_NOT_FOUND', `model "${service.name}" has no version loaded`, {
      details: { model: service.name },
    });
  const pipeline = await servingPipeline(model);
  const headerValue = request.headerLength === undefined ? undefined : String(request.headerLength);
  const { request: parsed, feeds } = await parseTensorBody(request.body, headerValue, model, pipeline);
  return {
    async run(signal?: AbortSignal): Promise<MessageAnswer> {
      const result = await service.infer(feeds, undefined, model, signal);
      const served = result.model === model ? pipeline : await servingPipeline(result.model);
      const outputs = served.wantsPostprocess(parsed.outputs)
        ? { ...result.outputs, ...served.postprocess(result.outputs) }
        : result.outputs;
      const { header, parts } = encodeInferResponse(result.model, parsed, outputs, request.maxResponseBytes);
      return { model: result.model, header, parts };
    },
  };
}
