import { describe, expect, it } from 'vitest';
import {
  DEVICE_STATUSES,
  JOB_STATUSES,
  JOB_TRANSITIONS,
  allowedTransitions,
  canTransition,
  decodeJobsMessage,
  deviceStatusSchema,
  encodeJobsMessage,
  isTerminal,
  jobsRejectedSchema,
  notifySchema,
  offlineStatusPayload,
  startNextAcceptedSchema,
  startNextRequestSchema,
  statusDetailValue,
  statusDetailsSchema,
  updateRequestSchema,
} from '../../../device-agent/protocol/index.js';

describe('job execution statuses', () => {
  it('lists AWS statuses and makes the terminal ones final', () => {
    expect(JOB_STATUSES).toEqual([
      'QUEUED',
      'IN_PROGRESS',
      'SUCCEEDED',
      'FAILED',
      'REJECTED',
      'CANCELED',
      'TIMED_OUT',
      'REMOVED',
    ]);
    for (const status of JOB_STATUSES) {
      expect(isTerminal(status)).toBe(status !== 'QUEUED' && status !== 'IN_PROGRESS');
      if (isTerminal(status)) expect(Object.keys(JOB_TRANSITIONS[status])).toEqual([]);
    }
    expect(Object.isFrozen(JOB_TRANSITIONS)).toBe(true);
    expect(Object.isFrozen(JOB_TRANSITIONS.QUEUED)).toBe(true);
  });

  it('lets the device report progress and outcomes, and only the service time out, cancel or remove', () => {
    expect(canTransition('QUEUED', 'IN_PROGRESS', 'device')).toBe(true);
    expect(canTransition('IN_PROGRESS', 'IN_PROGRESS', 'device')).toBe(true);
    expect(canTransition('IN_PROGRESS', 'SUCCEEDED', 'device')).toBe(true);
    expect(canTransition('QUEUED', 'REJECTED', 'device')).toBe(true);
    expect(canTransition('IN_PROGRESS', 'TIMED_OUT', 'device')).toBe(false);
    expect(canTransition('IN_PROGRESS', 'TIMED_OUT', 'service')).toBe(true);
    expect(canTransition('QUEUED', 'TIMED_OUT', 'service')).toBe(false); // only IN_PROGRESS runs a timer
    expect(canTransition('QUEUED', 'CANCELED', 'service')).toBe(true);
    expect(canTransition('SUCCEEDED', 'IN_PROGRESS', 'device')).toBe(false);
    expect(canTransition('IN_PROGRESS', 'QUEUED', 'device')).toBe(false);
    expect(allowedTransitions('IN_PROGRESS', 'device')).toEqual([...DEVICE_STATUSES]);
    expect(allowedTransitions('FAILED', 'service')).toEqual([]);
  });
});

describe('statusDetails', () => {
  it('holds AWS limits: ≤ 10 pairs, keys [a-zA-Z0-9:_-]{1,128}, values 1–1024 characters without control characters', () => {
    expect(statusDetailsSchema.safeParse({ 'step:1_a-b': 'downloading 50 %' }).success).toBe(true);
    const ten = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'v']));
    expect(statusDetailsSchema.safeParse(ten).success).toBe(true);
    expect(statusDetailsSchema.safeParse({ ...ten, k10: 'v' }).success).toBe(false);
    expect(statusDetailsSchema.safeParse({ 'bad key': 'v' }).success).toBe(false);
    expect(statusDetailsSchema.safeParse({ ['k'.repeat(129)]: 'v' }).success).toBe(false);
    expect(statusDetailsSchema.safeParse({ k: '' }).success).toBe(false);
    expect(statusDetailsSchema.safeParse({ k: 'x'.repeat(1024) }).success).toBe(true);
    expect(statusDetailsSchema.safeParse({ k: 'x'.repeat(1025) }).success).toBe(false);
    expect(statusDetailsSchema.safeParse({ k: 'line\nbreak' }).success).toBe(false);
  });

  it('statusDetailValue makes any message a valid value', () => {
    expect(statusDetailValue('a\n\tb   c')).toBe('a b c');
    expect(statusDetailValue('\n')).toBe('-');
    const long = statusDetailValue('😀'.repeat(1000));
    expect(long.length).toBeLessThanOrEqual(1024);
    expect(long.endsWith('…')).toBe(true);
    expect(statusDetailsSchema.safeParse({ k: long }).success).toBe(true);
  });
});

describe('Jobs messages', () => {
  it("parses the developer guide's StartNextPendingJobExecution response", () => {
    const doc = {
      execution: {
        jobId: '022',
        thingName: 'MyThing',
        jobDocument: { operation: 'outpost.deploy' },
        status: 'IN_PROGRESS',
        queuedAt: 1489096123309,
        lastUpdatedAt: 1489096123309,
        versionNumber: 1,
        executionNumber: 1234567890,
      },
      clientToken: 'client-1',
      timestamp: 1489088524284,
    };
    const decoded = decodeJobsMessage(startNextAcceptedSchema, JSON.stringify(doc));
    expect(decoded).toEqual({ ok: true, value: doc });
  });

  it('accepts a job document given as a JSON string, as the HTTPS API returns it', () => {
    const decoded = decodeJobsMessage(
      startNextAcceptedSchema,
      JSON.stringify({
        execution: {
          jobId: 'j',
          thingName: 't',
          jobDocument: '{"operation":"noop"}',
          status: 'QUEUED',
          queuedAt: 1,
          lastUpdatedAt: 1,
          versionNumber: 1,
          executionNumber: 1,
        },
        timestamp: 2,
      }),
    );
    expect(decoded.ok).toBe(true);
  });

  it('reads JobExecutionsChanged with executions grouped by status', () => {
    const summary = { jobId: 'j', queuedAt: 1, lastUpdatedAt: 1, versionNumber: 1, executionNumber: 1 };
    expect(notifySchema.parse({ jobs: { QUEUED: [summary] }, timestamp: 5 }).jobs.QUEUED).toEqual([summary]);
  });

  it('decodes an empty request as {} and encodes compact JSON', () => {
    expect(decodeJobsMessage(startNextRequestSchema, new Uint8Array())).toEqual({ ok: true, value: {} });
    expect(String(encodeJobsMessage({ a: 1, b: undefined }))).toBe('{"a":1}');
  });

  it('maps bad payloads to InvalidJson and InvalidRequest, keeping the client token', () => {
    expect(decodeJobsMessage(updateRequestSchema, '{"status":')).toMatchObject({ ok: false, code: 'InvalidJson' });
    expect(decodeJobsMessage(updateRequestSchema, Uint8Array.of(0xff, 0xfe))).toMatchObject({ code: 'InvalidJson' });
    const bad = decodeJobsMessage(updateRequestSchema, JSON.stringify({ status: 'CANCELED', clientToken: 'abc' }));
    expect(bad).toMatchObject({ ok: false, code: 'InvalidRequest', clientToken: 'abc' });
    expect(bad.ok ? '' : bad.message).toMatch(/^status: /);
    const version = decodeJobsMessage(updateRequestSchema, JSON.stringify({ status: 'FAILED', expectedVersion: -1 }));
    expect(version.ok ? '' : version.message).toMatch(/^expectedVersion: /);
    const token = decodeJobsMessage(startNextRequestSchema, JSON.stringify({ clientToken: 'x'.repeat(65) }));
    expect(token).toMatchObject({ ok: false, code: 'InvalidRequest' });
    expect(token).not.toHaveProperty('clientToken');
    const step = decodeJobsMessage(startNextRequestSchema, JSON.stringify({ stepTimeoutInMinutes: 10_081 }));
    expect(step.ok).toBe(false);
    expect(decodeJobsMessage(startNextRequestSchema, JSON.stringify({ stepTimeoutInMinutes: -1 })).ok).toBe(true);
  });

  it('reads the ErrorResponse with its execution state', () => {
    const rejected = jobsRejectedSchema.parse({
      code: 'VersionMismatch',
      message: 'm',
      timestamp: 1,
      executionState: { status: 'IN_PROGRESS', versionNumber: 3 },
    });
    expect(rejected.executionState?.versionNumber).toBe(3);
    expect(jobsRejectedSchema.safeParse({ code: 'Nope', message: 'm', timestamp: 1 }).success).toBe(false);
  });

  it('status topic: the last will reads as disconnected', () => {
    expect(deviceStatusSchema.parse(JSON.parse(offlineStatusPayload('pi-1')))).toEqual({
      thing: 'pi-1',
      connected: false,
    });
  });
});
