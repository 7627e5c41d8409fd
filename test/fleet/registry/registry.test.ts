import { describe, expect, it } from 'vitest';
import { matches, parseQuery } from '../../../fleet/registry/query.js';
import { parseStatus } from '../../../fleet/registry/status.js';
import type { ThingRecord } from '../../../fleet/store/index.js';
import { isOutpostError } from '../../../runtime/errors.js';

const thing: ThingRecord = {
  name: 'pi-1',
  connected: true,
  firstSeenMs: 1,
  lastSeenMs: 2,
  target: { profile: 'cuda:sm_87', cpuProfile: 'arm64:cortex-a78ae', arch: 'arm64' },
  models: [{ model: 'cnn', version: '1.0.0' }],
  health: [],
  drift: [],
  shadows: [],
  guardrails: [],
  attributes: { site: 'plant-3' },
};

describe('dynamic group queries', () => {
  it('parses key=value clauses and matches every one', () => {
    const where = parseQuery('arch=arm64, cpu=cortex-a78ae,attr.site=plant-3');
    expect(where).toEqual([
      { key: 'arch', value: 'arm64' },
      { key: 'cpu', value: 'cortex-a78ae' },
      { key: 'attr.site', value: 'plant-3' },
    ]);
    expect(matches(thing, where)).toBe(true);
    expect(matches(thing, parseQuery('cpu=sm_87,target=cuda:sm_87,model=cnn'))).toBe(true);
    expect(matches(thing, parseQuery('arch=arm64,attr.site=plant-4'))).toBe(false);
    expect(matches(thing, parseQuery('attr.rack=1'))).toBe(false);
  });

  it.each(['', 'arch', 'colour=red', 'arch=', 'attr.=x'])('refuses %j naming the keys it accepts', (text) => {
    let error: unknown;
    try {
      parseQuery(text);
    } catch (e) {
      error = e;
    }
    expect(isOutpostError(error, 'INVALID_ARGUMENT')).toBe(true);
    expect((error as Error).message).toContain('arch, target, cpu, model, attr.<name>');
  });
});

describe('status messages', () => {
  const at = 1_700_000_000_000;
  it("reads the agent's host, active models, health and drift", () => {
    const message = {
      thing: 'pi-1',
      connected: true,
      host: {
        arch: 'arm64',
        profile: 'arm64:cortex-a72',
        cpuProfile: 'arm64:cortex-a72',
        agentVersion: '0.1.0',
        onnxruntimeVersion: '1.30.0',
      },
      active: [{ model: 'cnn', version: '1.0.0', variant: 'int8', backend: 'native', role: 'production' }],
      health: [{ model: 'cnn', version: '1.0.0', requests: 3, errors: 0, errorRate: 0, p50Ms: 1.2, p99Ms: 4 }],
      drift: [
        {
          model: 'cnn',
          version: '1.0.0',
          samples: 300,
          drifting: true,
          scores: [{ feature: 'image[c0]', stat: 'psi', value: 0.4, threshold: 0.25 }],
        },
      ],
      deployments: [],
      disk: { path: '/', freeBytes: 1, totalBytes: 2 },
    };
    const parsed = parseStatus('pi-1', Buffer.from(JSON.stringify(message)), at);
    expect(parsed).toEqual({
      ok: true,
      update: {
        name: 'pi-1',
        connected: true,
        atMs: at,
        target: { arch: 'arm64', profile: 'arm64:cortex-a72', cpuProfile: 'arm64:cortex-a72' },
        agentVersion: '0.1.0',
        onnxruntimeVersion: '1.30.0',
        models: [{ model: 'cnn', version: '1.0.0', variant: 'int8', backend: 'native', role: 'production' }],
        health: [{ model: 'cnn', version: '1.0.0', requests: 3, errors: 0, p50Ms: 1.2, p99Ms: 4 }],
        drift: [
          {
            model: 'cnn',
            version: '1.0.0',
            samples: 300,
            drifting: true,
            scores: [{ feature: 'image[c0]', stat: 'psi', value: 0.4, threshold: 0.25 }],
          },
        ],
      },
    });
    expect(parseStatus('pi-1', Buffer.from('{"thing":"pi-1","connected":false}'), at)).toEqual({
      ok: true,
      update: { name: 'pi-1', connected: false, atMs: at },
    });
  });

  it('keeps the shadow comparisons and guardrail watches, a NaN figure (null in JSON) as absent', () => {
    const message = {
      thing: 'pi-1',
      connected: true,
      shadows: [
        {
          model: 'cnn',
          version: '2.0.0',
          percent: 50,
          compared: 40,
          shadowErrors: 1,
          agreement: 0.95,
          meanCosine: null,
          maxAbsDiff: null,
          nonFiniteMismatches: 2,
          productionP50Ms: 1.5,
          shadowP50Ms: 2.5,
          extra: 'ignored',
        },
        // A pipeline's shadow: its OCR text graded by exact match.
        {
          model: 'ocr',
          version: '1.1.0',
          percent: 100,
          compared: 3,
          shadowErrors: 0,
          exactMatch: 2 / 3,
          maxAbsDiff: 0,
        },
      ],
      guardrails: [
        {
          model: 'cnn',
          version: '2.0.0',
          requests: 12,
          errors: 1,
          errorRate: 1 / 12,
          p99Ms: 9,
          elapsedSeconds: 30,
          windowSeconds: 600,
        },
      ],
    };
    const parsed = parseStatus('pi-1', Buffer.from(JSON.stringify(message)), at);
    expect(parsed).toEqual({
      ok: true,
      update: {
        name: 'pi-1',
        connected: true,
        atMs: at,
        shadows: [
          {
            model: 'cnn',
            version: '2.0.0',
            percent: 50,
            compared: 40,
            shadowErrors: 1,
            agreement: 0.95,
            maxAbsDiff: null,
            nonFiniteMismatches: 2,
            productionP50Ms: 1.5,
            shadowP50Ms: 2.5,
          },
          {
            model: 'ocr',
            version: '1.1.0',
            percent: 100,
            compared: 3,
            shadowErrors: 0,
            exactMatch: 2 / 3,
            maxAbsDiff: 0,
            nonFiniteMismatches: 0,
          },
        ],
        guardrails: [
          {
            model: 'cnn',
            version: '2.0.0',
            requests: 12,
            errors: 1,
            errorRate: 1 / 12,
            p99Ms: 9,
            elapsedSeconds: 30,
            windowSeconds: 600,
          },
        ],
      },
    });
  });

  it.each([
    ['not JSON', 'not json {', /not JSON/],
    ['no connected flag', '{"thing":"pi-1"}', /connected/],
    ['another thing on this topic', '{"thing":"pi-2","connected":true}', /names pi-2, the topic pi-1/],
    ['a malformed host', '{"thing":"pi-1","connected":true,"host":{"arch":7}}', /host\.arch/],
    [
      'a shadow without its counts',
      '{"thing":"pi-1","connected":true,"shadows":[{"model":"m","version":"1"}]}',
      /shadows\.0/,
    ],
  ])('refuses %s, saying why', (_what, payload, reason) => {
    const parsed = parseStatus('pi-1', Buffer.from(payload), at);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });
});
