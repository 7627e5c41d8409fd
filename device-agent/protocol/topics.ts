import { NEXT_JOB_ID, checkId, isValidId } from './ids.js';

/**
 * Topic names, exactly as AWS IoT reserves them (developer guide, "Reserved topics": Jobs topics and MQTT-based file
 * delivery topics), plus Outpost's own status and events topics. Builders validate every name they interpolate;
 * `parseTopic` is the inverse and answers `undefined` for anything that is not one of these topics.
 */

/** MQTT-based file delivery: every stream topic ends in the payload encoding the client chose. */
export const STREAM_ENCODINGS = Object.freeze(['json', 'cbor'] as const);
export type StreamEncoding = (typeof STREAM_ENCODINGS)[number];

const AWS_THINGS = '$aws/things';

const thingPrefix = (thing: string): string => `${AWS_THINGS}/${checkId('thing name', thing)}`;
const jobPrefix = (thing: string, jobId: string): string =>
  `${thingPrefix(thing)}/jobs/${jobId === NEXT_JOB_ID ? jobId : checkId('job id', jobId)}`;
const streamPrefix = (thing: string, streamId: string): string =>
  `${thingPrefix(thing)}/streams/${checkId('stream id', streamId)}`;

/** Jobs device MQTT API (developer guide, jobs-mqtt-api): one builder per topic. */
export const jobsTopics = Object.freeze({
  /** NextJobExecutionChanged, published by the service. */
  notifyNext: (thing: string) => `${thingPrefix(thing)}/jobs/notify-next`,
  /** JobExecutionsChanged, published by the service. */
  notify: (thing: string) => `${thingPrefix(thing)}/jobs/notify`,
  /** StartNextPendingJobExecution request, and its replies. */
  startNext: (thing: string) => `${thingPrefix(thing)}/jobs/start-next`,
  startNextAccepted: (thing: string) => `${thingPrefix(thing)}/jobs/start-next/accepted`,
  startNextRejected: (thing: string) => `${thingPrefix(thing)}/jobs/start-next/rejected`,
  /** GetPendingJobExecutions request, and its replies. */
  getPending: (thing: string) => `${thingPrefix(thing)}/jobs/get`,
  getPendingAccepted: (thing: string) => `${thingPrefix(thing)}/jobs/get/accepted`,
  getPendingRejected: (thing: string) => `${thingPrefix(thing)}/jobs/get/rejected`,
  /** DescribeJobExecution request (jobId may be `$next`), and its replies. */
  describe: (thing: string, jobId: string) => `${jobPrefix(thing, jobId)}/get`,
  describeAccepted: (thing: string, jobId: string) => `${jobPrefix(thing, jobId)}/get/accepted`,
  describeRejected: (thing: string, jobId: string) => `${jobPrefix(thing, jobId)}/get/rejected`,
  /** UpdateJobExecution request, and its replies. */
  update: (thing: string, jobId: string) => `${jobPrefix(thing, checkId('job id', jobId))}/update`,
  updateAccepted: (thing: string, jobId: string) => `${jobPrefix(thing, checkId('job id', jobId))}/update/accepted`,
  updateRejected: (thing: string, jobId: string) => `${jobPrefix(thing, checkId('job id', jobId))}/update/rejected`,
});

/** MQTT-based file delivery (developer guide, mqtt-based-file-delivery-in-devices): requests and replies. */
export const streamTopics = Object.freeze({
  /** DescribeStream request; reply on `description`, errors on `rejected`. */
  describe: (thing: string, streamId: string, encoding: StreamEncoding) =>
    `${streamPrefix(thing, streamId)}/describe/${encoding}`,
  description: (thing: string, streamId: string, encoding: StreamEncoding) =>
    `${streamPrefix(thing, streamId)}/description/${encoding}`,
  /** GetStream request; one `data` message per block, errors on `rejected`. */
  get: (thing: string, streamId: string, encoding: StreamEncoding) =>
    `${streamPrefix(thing, streamId)}/get/${encoding}`,
  data: (thing: string, streamId: string, encoding: StreamEncoding) =>
    `${streamPrefix(thing, streamId)}/data/${encoding}`,
  rejected: (thing: string, streamId: string, encoding: StreamEncoding) =>
    `${streamPrefix(thing, streamId)}/rejected/${encoding}`,
});

/**
 * Outpost's own topics (not AWS-reserved, so they pass through rules and any broker unchanged). `status` is
 * retained and doubles as the MQTT last will (MQTT 3.1.1 §3.1.2.5, Will Flag; §3.3.1.3 RETAIN), so the latest message
 * on it always tells whether the agent is connected. `events` carries deployment progress, not retained.
 */
export const outpostTopics = Object.freeze({
  status: (thing: string) => `outpost/things/${checkId('thing name', thing)}/status`,
  events: (thing: string) => `outpost/things/${checkId('thing name', thing)}/events`,
  /** Sampled inference data (data capture), chunked: `{ file, seq, last, data }`, not retained. */
  capture: (thing: string) => `outpost/things/${checkId('thing name', thing)}/capture`,
  /**
   * Asynchronous inference requests for one model (docs/serving-operations.md, "Asynchronous inference over MQTT"):
   * an Open Inference Protocol request, answered on the request's response topic (MQTT 5.0 §4.10 Request / Response).
   */
  infer: (thing: string, model: string) =>
    `outpost/things/${checkId('thing name', thing)}/infer/${checkId('model name', model)}`,
  /**
   * Where the fleet (and the ACL example's inference clients) ask for answers: under the device's own prefix, so the
   * ACL that confines a device to `outpost/things/{thing}/#` lets it publish them. `client` is the asker's id.
   */
  inferReplies: (thing: string, client: string) =>
    `outpost/things/${checkId('thing name', thing)}/infer-replies/${checkId('thing name', client)}`,
});

/** The agent's one subscription for every model's requests: `+` is the model name (MQTT 3.1.1 §4.7.1.3). */
export const inferFilter = (thing: string): string => `outpost/things/${checkId('thing name', thing)}/infer/+`;

/** Subscriptions for the side that plays the service: `+` stands for every thing (MQTT 3.1.1 §4.7.1.3). */
export const serviceFilters = Object.freeze({
  jobRequests: (): readonly string[] =>
    Object.freeze([
      `${AWS_THINGS}/+/jobs/start-next`,
      `${AWS_THINGS}/+/jobs/get`,
      `${AWS_THINGS}/+/jobs/+/get`,
      `${AWS_THINGS}/+/jobs/+/update`,
    ]),
  streamRequests: (streamId: string): readonly string[] =>
    Object.freeze([
      `${AWS_THINGS}/+/streams/${checkId('stream id', streamId)}/describe/+`,
      `${AWS_THINGS}/+/streams/${streamId}/get/+`,
    ]),
  status: (): string => 'outpost/things/+/status',
  events: (): string => 'outpost/things/+/events',
});

export type JobsOperation = 'notify-next' | 'notify' | 'start-next' | 'get-pending' | 'describe' | 'update';
export type StreamOperation = 'describe' | 'description' | 'get' | 'data' | 'rejected';
export type Reply = 'accepted' | 'rejected';

export type ParsedTopic =
  | { api: 'jobs'; thing: string; operation: JobsOperation; jobId?: string; reply?: Reply }
  | { api: 'streams'; thing: string; streamId: string; operation: StreamOperation; encoding: StreamEncoding }
  /** A stream topic whose last segment is not json|cbor: the service answers InvalidTopic on rejected/json. */
  | { api: 'streams'; thing: string; streamId: string; operation: StreamOperation; encoding: 'invalid' }
  | { api: 'outpost'; thing: string; operation: 'status' | 'events' }
  | { api: 'outpost'; thing: string; operation: 'infer'; model: string };

const STREAM_OPERATIONS: readonly string[] = ['describe', 'description', 'get', 'data', 'rejected'];
const isReply = (s: string | undefined): s is Reply => s === 'accepted' || s === 'rejected';

/** Classifies a topic; `undefined` for topics that are none of the above or carry an invalid name. */
export function parseTopic(topic: string): ParsedTopic | undefined {
  const parts = topic.split('/');
  if (parts[0] === 'outpost') return parseOutpost(parts);
  if (parts[0] !== '$aws' || parts[1] !== 'things') return undefined;
  const thing = parts[2];
  if (thing === undefined || !isValidId('thing name', thing)) return undefined;
  if (parts[3] === 'jobs') return parseJobs(thing, parts.slice(4));
  if (parts[3] === 'streams') return parseStreams(thing, parts.slice(4));
  return undefined;
}

function parseOutpost(parts: readonly string[]): ParsedTopic | undefined {
  const [, things, thing, operation, ...rest] = parts;
  if (things !== 'things' || thing === undefined || !isValidId('thing name', thing)) return undefined;
  if (operation === 'infer') {
    const [model, ...extra] = rest;
    if (model === undefined || extra.length > 0 || !isValidId('model name', model)) return undefined;
    return { api: 'outpost', thing, operation, model };
  }
  if (rest.length > 0) return undefined;
  if (operation !== 'status' && operation !== 'events') return undefined;
  return { api: 'outpost', thing, operation };
}

function parseJobs(thing: string, rest: readonly string[]): ParsedTopic | undefined {
  const [first, second, third, ...extra] = rest;
  if (first === undefined || extra.length > 0) return undefined;
  const withReply = (operation: JobsOperation, reply: string | undefined, jobId?: string): ParsedTopic | undefined => {
    if (reply !== undefined && !isReply(reply)) return undefined;
    return { api: 'jobs', thing, operation, ...(jobId === undefined ? {} : { jobId }), ...(reply ? { reply } : {}) };
  };
  // {jobId}/get[/reply] and {jobId}/update[/reply] first: a job may be called "get" or "notify" (jobs/get/get).
  if (second === 'get' || second === 'update') {
    // `$next` only names an execution to describe.
    const validJob = first === NEXT_JOB_ID ? second === 'get' : isValidId('job id', first);
    return validJob ? withReply(second === 'get' ? 'describe' : 'update', third, first) : undefined;
  }
  if ((first === 'notify-next' || first === 'notify') && second === undefined) return withReply(first, undefined);
  if (first === 'start-next' && third === undefined) return withReply('start-next', second);
  if (first === 'get' && third === undefined) return withReply('get-pending', second);
  return undefined;
}

function parseStreams(thing: string, rest: readonly string[]): ParsedTopic | undefined {
  const [streamId, operation, encoding, ...extra] = rest;
  if (streamId === undefined || operation === undefined || encoding === undefined || extra.length > 0) return undefined;
  if (!isValidId('stream id', streamId) || !STREAM_OPERATIONS.includes(operation)) return undefined;
  const op = operation as StreamOperation;
  if (encoding === 'json' || encoding === 'cbor') return { api: 'streams', thing, streamId, operation: op, encoding };
  return { api: 'streams', thing, streamId, operation: op, encoding: 'invalid' };
}
