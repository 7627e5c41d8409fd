import { describe, expect, it } from 'vitest';
import { parseAbort, parseRate, parseRetry } from '../../../fleet/rollouts/config.js';
import {
  type Outcome,
  figures,
  ratePerMinute,
  releaseBudget,
  shouldRetry,
  tripped,
} from '../../../fleet/rollouts/gate.js';
import { buildRollout, planWaves, readRollout, waveOrder } from '../../../fleet/rollouts/plan.js';
import { parseDuration, parseStrategy, waveSizes } from '../../../fleet/rollouts/strategy.js';

/** The error `fn` throws (undefined if none), for toMatchObject. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

const sizes = (strategy: string, then: string | undefined, total: number) =>
  waveSizes(parseStrategy(strategy, then), total).map((w) => [w.size, w.bakeMs]);

describe('rollout strategies', () => {
  it('parses durations as summed terms, and refuses anything else', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('0')).toBe(0);
    for (const bad of ['', '10', '10 m', 'm', '1y', '8d'])
      expect(
        thrown(() => parseDuration(bad)),
        bad,
      ).toMatchObject({ code: 'STRATEGY_INVALID' });
  });

  it('all-at-once is one wave', () => {
    expect(sizes('all-at-once', undefined, 7)).toEqual([[7, 0]]);
  });

  it('a canary is N things or P % (at least one), then the rest; the last wave never bakes', () => {
    expect(sizes('canary:2,bake=10m', undefined, 10)).toEqual([
      [2, 600_000],
      [8, 0],
    ]);
    expect(sizes('canary:5%,bake=30s', undefined, 100)).toEqual([
      [5, 30_000],
      [95, 0],
    ]);
    expect(sizes('canary:1%', undefined, 10)).toEqual([
      [1, 0],
      [9, 0],
    ]);
    // Never all of them in the canary when there is more than one.
    expect(sizes('canary:100%', undefined, 4)).toEqual([
      [3, 0],
      [1, 0],
    ]);
    expect(sizes('canary:3', undefined, 1)).toEqual([[1, 0]]);
  });

  it('linear waves are P % of the whole target each, the last what is left', () => {
    expect(sizes('linear:25%,every=5m', undefined, 10)).toEqual([
      [3, 300_000],
      [3, 300_000],
      [3, 300_000],
      [1, 0],
    ]);
    expect(sizes('linear:50%,every=1s', undefined, 1)).toEqual([[1, 0]]);
  });

  it('canary then linear', () => {
    expect(sizes('canary:5%,bake=10m', 'linear:25%,every=5m', 100)).toEqual([
      [5, 600_000],
      [25, 300_000],
      [25, 300_000],
      [25, 300_000],
      [20, 0],
    ]);
    expect(sizes('canary:1', 'all-at-once', 5)).toEqual([
      [1, 0],
      [4, 0],
    ]);
  });

  it('refuses malformed strategies with STRATEGY_INVALID naming the field', () => {
    const bad: [string, string | undefined, string][] = [
      ['canary', undefined, 'strategy'],
      ['canary:0', undefined, 'strategy'],
      ['canary:150%', undefined, 'strategy'],
      ['canary:5%,bake=soon', undefined, 'strategy bake'],
      ['canary:5%,every=1m', undefined, 'strategy'],
      ['linear:25%', undefined, 'strategy'],
      ['linear:3,every=1m', undefined, 'strategy'],
      ['blue-green', undefined, 'strategy'],
      ['linear:25%,every=1m', 'linear:25%,every=1m', 'then'],
      ['canary:1', 'canary:2', 'then'],
    ];
    for (const [strategy, then, field] of bad) {
      expect(
        thrown(() => parseStrategy(strategy, then)),
        `${strategy} ${then ?? ''}`,
      ).toMatchObject({
        code: 'STRATEGY_INVALID',
        details: { field },
      });
    }
  });
});

describe('IoT Jobs rate, abort and retry settings', () => {
  it("takes AWS's field names and limits", () => {
    expect(parseRate('maximumPerMinute=50')).toEqual({ maximumPerMinute: 50 });
    expect(parseRate('baseRatePerMinute=5,incrementFactor=2,numberOfSucceededThings=10,maximumPerMinute=100')).toEqual({
      maximumPerMinute: 100,
      exponentialRate: {
        baseRatePerMinute: 5,
        incrementFactor: 2,
        rateIncreaseCriteria: { numberOfSucceededThings: 10 },
      },
    });
    expect(parseAbort(['failureType=FAILED,thresholdPercentage=20,minNumberOfExecutedThings=5'])).toEqual({
      criteriaList: [
        { action: 'CANCEL', failureType: 'FAILED', thresholdPercentage: 20, minNumberOfExecutedThings: 5 },
      ],
    });
    expect(parseRetry(['failureType=TIMED_OUT,numberOfRetries=2'])).toEqual({
      criteriaList: [{ failureType: 'TIMED_OUT', numberOfRetries: 2 }],
    });
  });

  it('refuses values outside the limits, naming the field', () => {
    const cases: [() => unknown, string][] = [
      [() => parseRate('maximumPerMinute=0'), 'rate.maximumPerMinute'],
      [() => parseRate('maximumPerMinute=1001'), 'rate.maximumPerMinute'],
      [
        () => parseRate('baseRatePerMinute=5,incrementFactor=6,numberOfNotifiedThings=1'),
        'rate.exponentialRate.incrementFactor',
      ],
      [
        () => parseRate('baseRatePerMinute=5,incrementFactor=1.05,numberOfNotifiedThings=1'),
        'rate.exponentialRate.incrementFactor',
      ],
      [() => parseRate('baseRatePerMinute=5,incrementFactor=2'), 'rate.exponentialRate.rateIncreaseCriteria'],
      [
        () => parseRate('baseRatePerMinute=50,incrementFactor=2,numberOfNotifiedThings=1,maximumPerMinute=10'),
        'rate.maximumPerMinute',
      ],
      [() => parseRate('perMinute=5'), 'rate'],
      [
        () => parseAbort(['failureType=CRASHED,thresholdPercentage=20,minNumberOfExecutedThings=5']),
        'abort.criteriaList.0.failureType',
      ],
      [
        () => parseAbort(['failureType=ALL,thresholdPercentage=101,minNumberOfExecutedThings=5']),
        'abort.criteriaList.0.thresholdPercentage',
      ],
      [
        () => parseAbort(['failureType=ALL,thresholdPercentage=10,minNumberOfExecutedThings=0']),
        'abort.criteriaList.0.minNumberOfExecutedThings',
      ],
      [
        () => parseAbort(['failureType=ALL,thresholdPercentage=10,minNumberOfExecutedThings=1,action=STOP']),
        'abort.criteriaList.0.action',
      ],
      [() => parseRetry(['failureType=REJECTED,numberOfRetries=1']), 'retry.criteriaList.0.failureType'],
      [() => parseRetry(['failureType=FAILED,numberOfRetries=11']), 'retry.criteriaList.0.numberOfRetries'],
      [() => parseRetry(['failureType=FAILED']), 'retry.criteriaList.0.numberOfRetries'],
      [() => parseRetry(['failureType=FAILED,numberOfRetries=1,numberOfRetries=2']), 'retry'],
    ];
    for (const [fn, field] of cases) {
      expect(thrown(fn), field).toMatchObject({ code: 'STRATEGY_INVALID', details: { field } });
    }
  });

  it('abort criteria trip at the threshold once enough executed; a guardrail rollback counts as FAILED', () => {
    const outcomes: Outcome[] = [
      { thing: 'a', status: 'SUCCEEDED' as const, statusDetails: {} },
      { thing: 'b', status: 'FAILED' as const, statusDetails: { reasonCode: 'GUARDRAIL_ERROR_RATE' } },
      { thing: 'c', status: 'QUEUED' as const, statusDetails: {} },
    ];
    const f = figures(outcomes);
    expect(f).toEqual({ executed: 2, succeeded: 1, failed: 1, rejected: 0, timedOut: 0, guardrail: 1, drifting: 0 });
    const criteria = {
      action: 'CANCEL' as const,
      failureType: 'FAILED' as const,
      minNumberOfExecutedThings: 2,
      thresholdPercentage: 50,
    };
    expect(tripped([criteria], f, 'wave', 0)).toMatchObject({ scope: 'wave', wave: 0, failurePercentage: 50 });
    expect(tripped([{ ...criteria, minNumberOfExecutedThings: 3 }], f, 'wave')).toBeUndefined();
    expect(tripped([{ ...criteria, thresholdPercentage: 51 }], f, 'wave')).toBeUndefined();
    expect(tripped([{ ...criteria, failureType: 'TIMED_OUT' }], f, 'wave')).toBeUndefined();
    expect(tripped([{ ...criteria, failureType: 'ALL' }], f, 'deployment')).toMatchObject({ scope: 'deployment' });
  });

  it('DRIFT criteria count things that succeeded and now report the version drifting; ALL keeps AWS meaning', () => {
    const outcomes: Outcome[] = ['a', 'b', 'c', 'd'].map((thing) => ({
      thing,
      status: thing === 'd' ? ('FAILED' as const) : ('SUCCEEDED' as const),
      statusDetails: {},
    }));
    // d failed (drift figures of a thing that did not take the version do not count), a and b drift.
    const f = figures(outcomes, new Set(['a', 'b', 'd']));
    expect(f).toMatchObject({ executed: 4, succeeded: 3, failed: 1, drifting: 2 });
    const [drift] = parseAbort(['failureType=DRIFT,minNumberOfExecutedThings=2,thresholdPercentage=50']).criteriaList;
    if (drift === undefined) throw new Error('no criteria parsed');
    expect(tripped([drift], f, 'wave', 0)).toMatchObject({ failurePercentage: 50 });
    expect(tripped([{ ...drift, thresholdPercentage: 60 }], f, 'wave')).toBeUndefined();
    expect(tripped([{ ...drift, failureType: 'ALL', thresholdPercentage: 30 }], f, 'wave')).toBeUndefined();
  });

  it('retries per failure type, up to numberOfRetries', () => {
    const config = parseRetry(['failureType=FAILED,numberOfRetries=2', 'failureType=TIMED_OUT,numberOfRetries=1']);
    expect(shouldRetry(config, 'FAILED', 0)).toBe(true);
    expect(shouldRetry(config, 'FAILED', 2)).toBe(false);
    expect(shouldRetry(config, 'TIMED_OUT', 0)).toBe(true);
    expect(shouldRetry(config, 'TIMED_OUT', 1)).toBe(false);
    expect(shouldRetry(config, 'REJECTED', 0)).toBe(false);
    expect(shouldRetry(undefined, 'FAILED', 0)).toBe(false);
  });

  it('paces releases: maximumPerMinute, an exponential rate growing per criteria, capped', () => {
    expect(ratePerMinute(undefined, { notified: 0, succeeded: 0 })).toBeUndefined();
    expect(ratePerMinute(parseRate('maximumPerMinute=10'), { notified: 100, succeeded: 0 })).toBe(10);
    const exp = parseRate('baseRatePerMinute=2,incrementFactor=2,numberOfSucceededThings=3,maximumPerMinute=10');
    expect(ratePerMinute(exp, { notified: 50, succeeded: 2 })).toBe(2);
    expect(ratePerMinute(exp, { notified: 50, succeeded: 3 })).toBe(4);
    expect(ratePerMinute(exp, { notified: 50, succeeded: 6 })).toBe(8);
    expect(ratePerMinute(exp, { notified: 50, succeeded: 9 })).toBe(10);
    expect(releaseBudget(10, 7, 100)).toBe(3);
    expect(releaseBudget(10, 12, 100)).toBe(0);
    expect(releaseBudget(undefined, 0, 5)).toBe(5);
  });
});

describe('wave membership', () => {
  const fleet = [
    ...Array.from({ length: 50 }, (_, i) => ({ name: `x${i}`, stratum: 'x86_64:avx2' })),
    ...Array.from({ length: 30 }, (_, i) => ({ name: `p${i}`, stratum: 'arm64:cortex-a72' })),
    ...Array.from({ length: 20 }, (_, i) => ({ name: `j${i}`, stratum: 'cuda:sm_87' })),
  ];

  it('is deterministic for a seed, and differs between seeds', () => {
    expect(waveOrder(fleet, 'd-1')).toEqual(waveOrder([...fleet].reverse(), 'd-1'));
    expect(waveOrder(fleet, 'd-1')).not.toEqual(waveOrder(fleet, 'd-2'));
  });

  it('spreads mixed targets across waves, the canary first of all', () => {
    const rollout = buildRollout({ strategy: 'canary:5%,bake=1m', then: 'linear:25%,every=1m' }, 'd-1');
    const plan = planWaves(rollout, fleet);
    expect(plan.waves.map((w) => w.size)).toEqual([5, 25, 25, 25, 20]);
    const inWave = (wave: number) => fleet.filter((m) => plan.membership.get(m.name) === wave);
    const canary = inWave(0);
    expect(new Set(canary.map((m) => m.stratum))).toEqual(new Set(['x86_64:avx2', 'arm64:cortex-a72', 'cuda:sm_87']));
    for (const wave of [1, 2, 3]) {
      const members = inWave(wave);
      const share = (s: string) => members.filter((m) => m.stratum === s).length / members.length;
      expect(share('x86_64:avx2')).toBeGreaterThan(0.4);
      expect(share('arm64:cortex-a72')).toBeGreaterThan(0.2);
      expect(share('cuda:sm_87')).toBeGreaterThan(0.1);
    }
    expect(new Set(plan.membership.values()).size).toBe(5);
    expect(plan.membership.size).toBe(100);
  });

  it('stores what was given, and reads deployments from before rollouts as all-at-once', () => {
    const rollout = buildRollout(
      {
        strategy: 'canary:1',
        abortConfig: { criteriaList: [{ failureType: 'ALL', thresholdPercentage: 10, minNumberOfExecutedThings: 1 }] },
      },
      'd-9',
    );
    expect(rollout).toMatchObject({
      type: 'canary',
      strategy: 'canary:1',
      seed: 'd-9',
      abortConfig: { criteriaList: [{ action: 'CANCEL' }] },
    });
    expect(readRollout({ type: 'all-at-once' }, 'd-0')).toMatchObject({
      type: 'all-at-once',
      phases: [{ kind: 'all-at-once' }],
    });
    expect(thrown(() => buildRollout({ abortConfig: { criteriaList: [] } }, 'd'))).toMatchObject({
      code: 'STRATEGY_INVALID',
      details: { field: 'abortConfig.criteriaList' },
    });
  });
});
