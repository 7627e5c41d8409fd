import { OutpostError, isOutpostError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import {
  BINARY_CONTENT_TYPE,
  HEADER_LENGTH_HEADER,
  errorResponse,
  prepareMessage,
  type MessageAnswer,
  type ModelService,
} from '../../runtime/server/index.js';
import { inferFilter, parseTopic } from '../protocol/index.js';
import type { IncomingMessage, MessageProperties, Transport } from '../transport/types.js';
import type { ActiveModels } from './active-models.js';
import { parseAsyncMessage, type AsyncRequest, type ReplyAddress } from './async-request.js';

const log = logger('agent.async');

/** Room kept in an answer for the `correlation_data` field and the error body around the encoded response. */
const REPLY_MARGIN_BYTES = 1024; // bytes

export interface AsyncInferenceOptions {
  readonly thing: string;
  readonly transport: Transport;
  readonly models: ActiveModels;
  /** Requests per model accepted and not yet answered (config `async`, ASYNC_CONFIG_DEFAULTS). */
  readonly maxQueue: number;
  /** Bytes: a larger request is refused with MESSAGE_TOO_LARGE, a larger answer with RESPONSE_TOO_LARGE. */
  readonly maxMessageBytes: number;
}

export interface AsyncStats {
  received: number;
  answered: number;
  /** Answered with an error (overload, oversize, deadline, bad input, a failed call). */
  failed: number;
  /** No response topic to answer on: nothing can be done but count them. */
  unanswerable: number;
  /** The answer could not be published (offline, refused by the broker's ACL). */
  undelivered: number;
}

/**
 * Asynchronous inference over MQTT (docs/serving-operations.md): requests on `outpost/things/{thing}/infer/{model}`
 * run through the model's service, scheduler and batching exactly like `POST /v2/models/{model}/infer`, and every
 * request that names a response topic gets exactly one answer there at QoS 1: the response, or `{error, code}`.
 * Requests enter the scheduler in arrival order (one admission chain per model); at most `maxQueue` per model are
 * outstanding, the next is refused at once. Requests that arrive while offline are what the broker's persistent
 * session kept for us (QoS 1 subscription, session expiry in the transport's options).
 */
export class AsyncInference {
  private readonly outstanding = new Map<string, number>();
  private readonly admission = new Map<string, Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly detach: (() => void)[] = [];
  private readonly filter: string;
  private subscribed = false;
  private stopped = false;
  readonly counts: AsyncStats = { received: 0, answered: 0, failed: 0, unanswerable: 0, undelivered: 0 };

  constructor(private readonly options: AsyncInferenceOptions) {
    this.filter = inferFilter(options.thing);
  }

  /** Subscribes now if connected, else at the first connect (the transport restores it after that). */
  start(): void {
    const { transport } = this.options;
    this.detach.push(
      transport.onMessage((message) => this.onMessage(message)),
      transport.onConnectionChange((connected) => {
        if (connected) void this.subscribe();
      }),
    );
    if (transport.connected) void this.subscribe();
  }

  private async subscribe(): Promise<void> {
    if (this.subscribed || this.stopped) return;
    this.subscribed = true;
    try {
      await this.options.transport.subscribe([this.filter], 1);
      log.info({ filter: this.filter }, 'taking asynchronous inference requests');
    } catch (error) {
      this.subscribed = false; // the next connect tries again
      log.warn({ filter: this.filter, error: messageOf(error) }, 'could not subscribe to inference requests');
    }
  }

  private onMessage(message: IncomingMessage): void {
    const topic = parseTopic(message.topic);
    if (topic?.api !== 'outpost' || topic.operation !== 'infer' || topic.thing !== this.options.thing) return;
    if (this.stopped) return;
    this.counts.received += 1;
    this.handle(topic.model, message).catch((error: unknown) => {
      log.error({ model: topic.model, error: messageOf(error) }, 'asynchronous request failed unanswered');
    });
  }

  private async handle(model: string, message: IncomingMessage): Promise<void> {
    const parsed = parseAsyncMessage(message);
    const { reply } = parsed;
    if (reply === undefined) {
      this.counts.unanswerable += 1;
      log.debug({ model }, 'inference request without a response topic dropped');
      return;
    }
    const { maxMessageBytes, maxQueue, models } = this.options;
    if (message.payload.length > maxMessageBytes) {
      const size = `${message.payload.length} bytes`;
      return this.fail(reply, new OutpostError('MESSAGE_TOO_LARGE', `the request is ${size}, over ${maxMessageBytes}`));
    }
    if ('error' in parsed) return this.fail(reply, parsed.error);
    const service = models.service(model);
    if (service === undefined || service.versions().length === 0) {
      const served = models.services().map((s) => s.name);
      const error = new OutpostError(
        'MODEL_NOT_FOUND',
        `model "${model}" is not served here; served: ${served.join(', ') || 'none'}`,
      );
      return this.fail(reply, error);
    }
    const queued = this.outstanding.get(model) ?? 0;
    if (queued >= maxQueue) {
      const error = new OutpostError(
        'OVERLOADED',
        `model ${model} has ${queued} asynchronous requests outstanding (at most ${maxQueue})`,
        {
          details: { model, queued, maxQueue },
        },
      );
      return this.fail(reply, error);
    }
    this.outstanding.set(model, queued + 1);
    let counted = true;
    // A request stops counting once its call settles, not once its answer is acknowledged: the queue bounds work
    // waiting for the model, and a slow PUBACK must not refuse the next caller.
    const release = (): void => {
      if (!counted) return;
      counted = false;
      this.outstanding.set(model, (this.outstanding.get(model) ?? 1) - 1);
    };
    try {
      await this.run(model, parsed.request, reply, service, release);
    } finally {
      release();
    }
  }

  /** Admits the request in arrival order, answers it, or answers DEADLINE_EXCEEDED when its deadline comes first. */
  private async run(
    model: string,
    request: AsyncRequest,
    reply: ReplyAddress,
    service: ModelService,
    release: () => void,
  ): Promise<void> {
    const deadline = new AbortController();
    const once = { answered: false };
    let timer: NodeJS.Timeout | undefined;
    if (request.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        this.timers.delete(timer as NodeJS.Timeout);
        deadline.abort();
        if (once.answered) return;
        once.answered = true;
        const error = new OutpostError('DEADLINE_EXCEEDED', `not answered within timeout_ms ${request.timeoutMs}`);
        void this.fail(reply, error);
      }, request.timeoutMs);
      this.timers.add(timer);
    }
    const maxResponseBytes = this.options.maxMessageBytes - REPLY_MARGIN_BYTES;
    const previous = this.admission.get(model) ?? Promise.resolve();
    // Each step ends once its request is in the scheduler's queue, so the next one enters after it (FIFO).
    const admitted = previous.then(async () => {
      if (deadline.signal.aborted) throw deadline.signal.reason;
      const prepared = await prepareMessage(service, { body: request.body, maxResponseBytes, ...headerOf(request) });
      return { answer: prepared.run(deadline.signal) };
    });
    const settled = admitted.then(
      () => undefined,
      () => undefined,
    );
    this.admission.set(model, settled);
    let result: MessageAnswer | undefined;
    let failure: unknown;
    try {
      result = await (await admitted).answer;
    } catch (error) {
      failure = error;
    } finally {
      if (timer !== undefined) {
        clearTimeout(timer);
        this.timers.delete(timer);
      }
      if (this.admission.get(model) === settled) this.admission.delete(model);
      release();
    }
    if (once.answered) return; // the deadline already answered; this late result is dropped
    once.answered = true;
    if (result !== undefined) await this.answer(reply, result);
    else await this.fail(reply, failure);
  }

  private async answer(reply: ReplyAddress, answer: MessageAnswer): Promise<void> {
    if (reply.style === 'fields') {
      if (answer.parts.length > 0) {
        const why = 'binary outputs need MQTT 5 (the answer carries inference-header-content-length as a property)';
        return this.fail(reply, new OutpostError('INPUT_INVALID', why));
      }
      this.counts.answered += 1;
      return this.publish(reply, withCorrelation(answer.header, reply.correlationField), {});
    }
    this.counts.answered += 1;
    if (answer.parts.length === 0)
      return this.publish(reply, answer.header, { contentType: 'application/json', userProperties: { status: '200' } });
    const payload = Buffer.concat([answer.header, ...answer.parts]);
    return this.publish(reply, payload, {
      contentType: BINARY_CONTENT_TYPE,
      userProperties: { status: '200', [HEADER_LENGTH_HEADER]: String(answer.header.byteLength) },
    });
  }

  private async fail(reply: ReplyAddress, error: unknown): Promise<void> {
    this.counts.failed += 1;
    const response = errorResponse(isOutpostError(error, 'REQUEST_CANCELLED') ? deadlineError() : error);
    const body = {
      ...response.body,
      ...(reply.style === 'fields' && reply.correlationField !== undefined
        ? { correlation_data: reply.correlationField }
        : {}),
    };
    await this.publish(reply, JSON.stringify(body), {
      contentType: 'application/json',
      userProperties: { status: String(response.status) },
    });
  }

  /** QoS 1, with the request's Correlation Data [MQTT 5.0 §4.10.2]; a failure is counted, never thrown. */
  private async publish(reply: ReplyAddress, payload: string | Uint8Array, properties: MessageProperties) {
    if (this.stopped) return;
    const all =
      reply.correlationData === undefined ? properties : { ...properties, correlationData: reply.correlationData };
    try {
      await this.options.transport.publish(reply.topic, payload, { qos: 1, properties: all });
    } catch (error) {
      this.counts.undelivered += 1;
      log.debug({ topic: reply.topic, error: messageOf(error) }, 'answer not delivered');
    }
  }

  stats(): Readonly<AsyncStats> {
    return { ...this.counts };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const undo of this.detach.splice(0)) undo();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.subscribed && this.options.transport.connected)
      await this.options.transport.unsubscribe([this.filter]).catch(() => undefined);
  }
}

function headerOf(request: AsyncRequest): { headerLength?: number } {
  return request.headerLength === undefined ? {} : { headerLength: request.headerLength };
}

/** Only a deadline takes an asynchronous request out of the queue. */
function deadlineError(): OutpostError {
  return new OutpostError('DEADLINE_EXCEEDED', 'the request’s timeout_ms passed while it waited to run');
}

/** `{"correlation_data":"…",` + the rest of the response object: the JSON answer with the request's correlation. */
function withCorrelation(header: Uint8Array, correlation: string | undefined): Uint8Array {
  if (correlation === undefined) return header;
  const body = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  const rest = body.subarray(1).toString('utf8').trimStart();
  const prefix = `{"correlation_data":${JSON.stringify(correlation)}${rest.startsWith('}') ? '' : ','}`;
  return Buffer.concat([Buffer.from(prefix, 'utf8'), body.subarray(1)]);
}
