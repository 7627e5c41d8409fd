import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  describeAcceptedSchema,
  getPendingAcceptedSchema,
  jobsRejectedSchema,
  jobsTopics,
  notifyNextSchema,
  notifySchema,
  startNextAcceptedSchema,
  updateAcceptedSchema,
} from '../../device-agent/protocol/index.js';
import { type ExecutionEvent, JobsService } from '../../fleet/jobs-service.js';
import { closeBroker, connectBroker } from '../../fleet/mqtt.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectPeer, type Peer, until } from '../helpers/mqtt.js';

const REPLY_TIMEOUT_MS = 3_000; // milliseconds for the service's answer
const IN_PROGRESS_TIMEOUT_MS = 300; // milliseconds: the job timeout under test
const DOCUMENT = Object.freeze({ operation: 'test', n: 1 });

let broker: TestBroker;
let fleet: MqttClient;
let jobs: JobsService;
let device: Peer;
let jobCounter = 0;
const events: ExecutionEvent[] = [];

beforeAll(async () => {
  broker = await startBroker();
  fleet = await connectBroker({ url: broker.urls.tcp });
  device = await connectPeer(broker.urls.tcp, { mqtt5: false });
});

afterAll(async () => {
  await device.close();
  await closeBroker(fleet);
  await broker.stop();
});

afterEach(async () => {
  await jobs.close();
});

/** A fresh service and a fresh thing per test, so no test sees another's executions. */
async function setup(): Promise<{ thing: string; jobId: string }> {
  jobs = new JobsService({ client: fleet });
  jobs.onEvent((event) => events.push(event));
  await jobs.start();
  const thing = `thing-${++jobCounter}`;
  await device.subscribe(`$aws/things/${thing}/jobs/#`);
  return { thing, jobId: `job-${jobCounter}` };
}

async function call(topic: string, reply: string, body: object): Promise<unknown> {
  const seen = device.inbox.on(reply).length;
  await device.publish(topic, JSON.stringify(body));
  const [payload] = (await device.inbox.wait(reply, seen + 1, REPLY_TIMEOUT_MS)).slice(seen);
  return JSON.parse(String(payload));
}

const startNext = (thing: string, body: object = {}) =>
  call(jobsTopics.startNext(thing), jobsTopics.startNextAccepted(thing), body).then((r) =>
    startNextAcceptedSchema.parse(r),
  );
const update = (thing: string, jobId: string, body: object, reply: 'accepted' | 'rejected' = 'accepted') =>
  call(
    jobsTopics.update(thing, jobId),
    reply === 'accepted' ? jobsTopics.updateAccepted(thing, jobId) : jobsTopics.updateRejected(thing, jobId),
    body,
  );

describe('jobs service', () => {
  it('notifies, then start-next moves QUEUED to IN_PROGRESS and returns the execution with its document', async () => {
    const { thing, jobId } = await setup();
    await jobs.createJob({ jobId, document: DOCUMENT, things: [thing] });
    const [notified] = await device.inbox.wait(jobsTopics.notifyNext(thing), 1, REPLY_TIMEOUT_MS);
    expect(notifyNextSchema.parse(JSON.parse(String(notified))).execution).toMatchObject({ jobId, status: 'QUEUED' });
    const [listed] = await device.inbox.wait(jobsTopics.notify(thing), 1, REPLY_TIMEOUT_MS);
    expect(notifySchema.parse(JSON.parse(String(listed))).jobs.QUEUED?.map((j) => j.jobId)).toEqual([jobId]);

    const reply = await startNext(thing, { statusDetails: { step: 'starting' }, clientToken: 'tok-1' });
    expect(reply.clientToken).toBe('tok-1');
    expect(reply.execution).toMatchObject({
      jobId,
      thingName: thing,
      jobDocument: DOCUMENT,
      status: 'IN_PROGRESS',
      statusDetails: { step: 'starting' },
      versionNumber: 2,
    });
    expect(reply.execution?.startedAt).toBeTypeOf('number');
    // Already IN_PROGRESS: returned as is, statusDetails unchanged.
    const again = await startNext(thing, { statusDetails: { step: 'ignored' } });
    expect(again.execution).toMatchObject({
      status: 'IN_PROGRESS',
      statusDetails: { step: 'starting' },
      versionNumber: 2,
    });
  });

  it('start-next with nothing pending answers without an execution', async () => {
    const { thing } = await setup();
    const reply = await startNext(thing);
    expect(reply.execution).toBeUndefined();
  });

  it('update checks expectedVersion (VersionMismatch with the execution state) and merges statusDetails', async () => {
    const { thing, jobId } = await setup();
    await jobs.createJob({ jobId, document: DOCUMENT, things: [thing] });
    await startNext(thing, { statusDetails: { step: 'downloading' } });
    const mismatch = jobsRejectedSchema.parse(
      await update(thing, jobId, { status: 'IN_PROGRESS', expectedVersion: 1, clientToken: 'v' }, 'rejected'),
    );
    expect(mismatch).toMatchObject({
      code: 'VersionMismatch',
      clientToken: 'v',
      executionState: { status: 'IN_PROGRESS', versionNumber: 2 },
    });
    const ok = updateAcceptedSchema.parse(
      await update(thing, jobId, {
        status: 'IN_PROGRESS',
        statusDetails: { progress: '50' },
        expectedVersion: 2,
        includeJobExecutionState: true,
        includeJobDocument: true,
      }),
    );
    expect(ok.executionState).toEqual({
      status: 'IN_PROGRESS',
      statusDetails: { step: 'downloading', progress: '50' },
      versionNumber: 3,
    });
    expect(ok.jobDocument).toEqual(DOCUMENT);
  });

  it('refuses illegal transitions, terminal states included, and more than 10 statusDetails pairs', async () => {
    const { thing, jobId } = await setup();
    await jobs.createJob({ jobId, document: DOCUMENT, things: [thing] });
    const tooMany = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v']));
    const invalid = jobsRejectedSchema.parse(
      await update(thing, jobId, { status: 'IN_PROGRESS', statusDetails: tooMany }, 'rejected'),
    );
    expect(invalid.code).toBe('InvalidRequest');
    const settable = jobsRejectedSchema.parse(await update(thing, jobId, { status: 'TIMED_OUT' }, 'rejected'));
    expect(settable).toMatchObject({ code: 'InvalidRequest' });
    expect(settable.message).toContain('status');
    await update(thing, jobId, { status: 'SUCCEEDED', statusDetails: { step: 'done' } });
    const illegal = jobsRejectedSchema.parse(await update(thing, jobId, { status: 'IN_PROGRESS' }, 'rejected'));
    expect(illegal).toMatchObject({
      code: 'InvalidStateTransition',
      executionState: { status: 'SUCCEEDED', statusDetails: { step: 'done' } },
    });
    expect(jobs.executions(jobId)).toEqual([
      expect.objectContaining({ thing, status: 'SUCCEEDED', statusDetails: { step: 'done' } }),
    ]);
    const unknown = jobsRejectedSchema.parse(await update(thing, 'no-such-job', { status: 'FAILED' }, 'rejected'));
    expect(unknown.code).toBe('ResourceNotFound');
  });

  it('answers malformed requests with InvalidJson and InvalidRequest', async () => {
    const { thing, jobId } = await setup();
    await jobs.createJob({ jobId, document: DOCUMENT, things: [thing] });
    const rejectedTopic = jobsTopics.updateRejected(thing, jobId);
    const seen = device.inbox.on(rejectedTopic).length;
    await device.publish(jobsTopics.update(thing, jobId), '{"status":');
    const [payload] = (await device.inbox.wait(rejectedTopic, seen + 1, REPLY_TIMEOUT_MS)).slice(seen);
    expect(jobsRejectedSchema.parse(JSON.parse(String(payload))).code).toBe('InvalidJson');
    const bad = jobsRejectedSchema.parse(
      await update(thing, jobId, { status: 'IN_PROGRESS', statusDetails: { step: 'a\nb' } }, 'rejected'),
    );
    expect(bad.code).toBe('InvalidRequest');
    expect(bad.message).toContain('statusDetails.step');
  });

  it('describes executions ($next included) and lists pending ones', async () => {
    const { thing, jobId } = await setup();
    await jobs.createJob({ jobId, document: DOCUMENT, things: [thing] });
    await jobs.createJob({ jobId: `${jobId}-b`, document: DOCUMENT, things: [thing] });
    await startNext(thing);
    const next = describeAcceptedSchema.parse(
      await call(jobsTopics.describe(thing, '$next'), jobsTopics.describeAccepted(thing, '$next'), {
        includeJobDocument: false,
      }),
    );
    expect(next.execution).toMatchObject({ jobId, status: 'IN_PROGRESS' });
    expect(next.execution?.jobDocument).toBeUndefined();
    const pending = getPendingAcceptedSchema.parse(
      await call(jobsTopics.getPending(thing), jobsTopics.getPendingAccepted(thing), { clientToken: 'p' }),
    );
    expect(pending.inProgressJobs.map((j) => j.jobId)).toEqual([jobId]);
    expect(pending.queuedJobs.map((j) => j.jobId)).toEqual([`${jobId}-b`]);
    const missing = jobsRejectedSchema.parse(
      await call(jobsTopics.describe(thing, 'nope'), jobsTopics.describeRejected(thing, 'nope'), {}),
    );
    expect(missing.code).toBe('ResourceNotFound');
  });

  it('times an IN_PROGRESS execution out, tells the device what is next and emits the change', async () => {
    const { thing, jobId } = await setup();
    await jobs.createJob({ jobId, document: DOCUMENT, things: [thing], inProgressTimeoutMs: IN_PROGRESS_TIMEOUT_MS });
    const notifyNext = jobsTopics.notifyNext(thing);
    await device.inbox.wait(notifyNext, 1, REPLY_TIMEOUT_MS);
    await startNext(thing);
    await until(() => jobs.executions(jobId)[0]?.status === 'TIMED_OUT', REPLY_TIMEOUT_MS, 'TIMED_OUT');
    const [last] = (await device.inbox.wait(notifyNext, 2, REPLY_TIMEOUT_MS)).slice(-1);
    expect(notifyNextSchema.parse(JSON.parse(String(last))).execution).toBeUndefined();
    expect(events.filter((e) => e.jobId === jobId).map((e) => e.status)).toEqual([
      'QUEUED',
      'IN_PROGRESS',
      'TIMED_OUT',
    ]);
    const late = jobsRejectedSchema.parse(await update(thing, jobId, { status: 'SUCCEEDED' }, 'rejected'));
    expect(late.code).toBe('InvalidStateTransition');
  });
});
