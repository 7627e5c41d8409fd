import { describe, expect, it } from 'vitest';
import {
  isProtocolError,
  jobsTopics,
  outpostTopics,
  parseTopic,
  serviceFilters,
  streamTopics,
} from '../../../device-agent/protocol/index.js';

describe('topics', () => {
  it('builds the Jobs topics exactly as AWS IoT reserves them', () => {
    expect(jobsTopics.notifyNext('my:thing_1-a')).toBe('$aws/things/my:thing_1-a/jobs/notify-next');
    expect(jobsTopics.notify('t')).toBe('$aws/things/t/jobs/notify');
    expect(jobsTopics.startNext('t')).toBe('$aws/things/t/jobs/start-next');
    expect(jobsTopics.startNextAccepted('t')).toBe('$aws/things/t/jobs/start-next/accepted');
    expect(jobsTopics.startNextRejected('t')).toBe('$aws/things/t/jobs/start-next/rejected');
    expect(jobsTopics.getPending('t')).toBe('$aws/things/t/jobs/get');
    expect(jobsTopics.getPendingAccepted('t')).toBe('$aws/things/t/jobs/get/accepted');
    expect(jobsTopics.getPendingRejected('t')).toBe('$aws/things/t/jobs/get/rejected');
    expect(jobsTopics.describe('t', 'job-1')).toBe('$aws/things/t/jobs/job-1/get');
    expect(jobsTopics.describe('t', '$next')).toBe('$aws/things/t/jobs/$next/get');
    expect(jobsTopics.describeAccepted('t', 'job-1')).toBe('$aws/things/t/jobs/job-1/get/accepted');
    expect(jobsTopics.describeRejected('t', 'job-1')).toBe('$aws/things/t/jobs/job-1/get/rejected');
    expect(jobsTopics.update('t', 'job-1')).toBe('$aws/things/t/jobs/job-1/update');
    expect(jobsTopics.updateAccepted('t', 'job-1')).toBe('$aws/things/t/jobs/job-1/update/accepted');
    expect(jobsTopics.updateRejected('t', 'job-1')).toBe('$aws/things/t/jobs/job-1/update/rejected');
  });

  it('builds the stream topics for both encodings, and Outpost status/events topics', () => {
    for (const encoding of ['json', 'cbor'] as const) {
      expect(streamTopics.describe('t', 's-1', encoding)).toBe(`$aws/things/t/streams/s-1/describe/${encoding}`);
      expect(streamTopics.description('t', 's-1', encoding)).toBe(`$aws/things/t/streams/s-1/description/${encoding}`);
      expect(streamTopics.get('t', 's-1', encoding)).toBe(`$aws/things/t/streams/s-1/get/${encoding}`);
      expect(streamTopics.data('t', 's-1', encoding)).toBe(`$aws/things/t/streams/s-1/data/${encoding}`);
      expect(streamTopics.rejected('t', 's-1', encoding)).toBe(`$aws/things/t/streams/s-1/rejected/${encoding}`);
    }
    expect(outpostTopics.status('t')).toBe('outpost/things/t/status');
    expect(outpostTopics.events('t')).toBe('outpost/things/t/events');
    expect(serviceFilters.streamRequests('s-1')).toEqual([
      '$aws/things/+/streams/s-1/describe/+',
      '$aws/things/+/streams/s-1/get/+',
    ]);
  });

  it.each([
    ['thing name', () => jobsTopics.startNext('a/b')],
    ['thing name', () => jobsTopics.startNext('+')],
    ['thing name', () => jobsTopics.startNext('')],
    ['thing name', () => jobsTopics.startNext('t'.repeat(129))],
    ['job id', () => jobsTopics.update('t', 'job:1')],
    ['job id', () => jobsTopics.update('t', '$next')],
    ['job id', () => jobsTopics.describe('t', 'j'.repeat(65))],
    ['stream id', () => streamTopics.get('t', 's#', 'json')],
    ['stream id', () => streamTopics.get('t', 's'.repeat(129), 'json')],
  ])('refuses an invalid %s with PROTOCOL_ID_INVALID', (kind, build) => {
    let caught: unknown;
    try {
      build();
    } catch (error) {
      caught = error;
    }
    expect(isProtocolError(caught, 'PROTOCOL_ID_INVALID')).toBe(true);
    expect((caught as Error).message).toContain(kind);
  });

  it('accepts the longest valid names', () => {
    expect(jobsTopics.update('t'.repeat(128), 'j'.repeat(64))).toContain('/jobs/');
    expect(streamTopics.get('t', 's'.repeat(128), 'cbor')).toContain('/streams/');
  });

  it('parses every topic it builds back to its parts', () => {
    expect(parseTopic(jobsTopics.notifyNext('t'))).toEqual({ api: 'jobs', thing: 't', operation: 'notify-next' });
    expect(parseTopic(jobsTopics.startNext('t'))).toEqual({ api: 'jobs', thing: 't', operation: 'start-next' });
    expect(parseTopic(jobsTopics.startNextRejected('t'))).toEqual({
      api: 'jobs',
      thing: 't',
      operation: 'start-next',
      reply: 'rejected',
    });
    expect(parseTopic(jobsTopics.getPendingAccepted('t'))).toMatchObject({
      operation: 'get-pending',
      reply: 'accepted',
    });
    expect(parseTopic(jobsTopics.describe('t', '$next'))).toEqual({
      api: 'jobs',
      thing: 't',
      operation: 'describe',
      jobId: '$next',
    });
    expect(parseTopic(jobsTopics.updateAccepted('t', 'j'))).toEqual({
      api: 'jobs',
      thing: 't',
      operation: 'update',
      jobId: 'j',
      reply: 'accepted',
    });
    expect(parseTopic(streamTopics.data('t', 's', 'cbor'))).toEqual({
      api: 'streams',
      thing: 't',
      streamId: 's',
      operation: 'data',
      encoding: 'cbor',
    });
    expect(parseTopic('$aws/things/t/streams/s/get/xml')).toMatchObject({ operation: 'get', encoding: 'invalid' });
    expect(parseTopic(outpostTopics.status('t'))).toEqual({ api: 'outpost', thing: 't', operation: 'status' });
    // Jobs may be named like the fixed operations.
    expect(parseTopic(jobsTopics.describe('t', 'get'))).toMatchObject({ operation: 'describe', jobId: 'get' });
    expect(parseTopic(jobsTopics.updateRejected('t', 'start-next'))).toMatchObject({
      operation: 'update',
      jobId: 'start-next',
      reply: 'rejected',
    });
  });

  it.each([
    'outpost/things/t/status/extra',
    '$aws/things/t/jobs/$next/update',
    '$aws/things/t/jobs/j/update/maybe',
    '$aws/things/t/jobs/notify-next/accepted',
    '$aws/things/t/jobs',
    '$aws/things/t/shadow/update',
    '$aws/things/a+b/jobs/start-next',
    '$aws/things/t/streams/s/upload/json',
    '$aws/things/t/streams/s/get/json/more',
    'devices/t/jobs',
  ])('does not recognise %s', (topic) => {
    expect(parseTopic(topic)).toBeUndefined();
  });
});
