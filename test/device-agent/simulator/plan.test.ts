import { describe, expect, it } from 'vitest';
import {
  countOf,
  planDevices,
  planOutcomes,
  type SimulationPlanOptions,
} from '../../../device-agent/simulator/index.js';

const BASE: SimulationPlanOptions = {
  devices: 50,
  prefix: 'sim-',
  seed: 7,
  targets: [
    { target: { profile: 'x86_64:avx2', arch: 'x86_64' }, share: 0.5 },
    { target: { profile: 'arm64:cortex-a72', arch: 'arm64' }, share: 0.5 },
  ],
  offlineRate: 0.1,
  failRate: 0.2,
  guardrailFailRate: 0.1,
};

describe('the simulation plan', () => {
  it('names devices <prefix>0 … <prefix>N-1 and deals targets and offline devices in exact, seeded counts', () => {
    const plan = planDevices({ ...BASE, devices: 5, prefix: 'rehearsal-', offlineRate: 0.4 });
    expect(plan.map((d) => d.thing)).toEqual([
      'rehearsal-0',
      'rehearsal-1',
      'rehearsal-2',
      'rehearsal-3',
      'rehearsal-4',
    ]);
    // Largest remainder: 2.5 and 2.5 of 5 are 3 and 2 (the first share wins the tie).
    expect(plan.filter((d) => d.target.arch === 'x86_64')).toHaveLength(3);
    expect(plan.filter((d) => d.offline)).toHaveLength(2);
    expect(planDevices({ ...BASE, devices: 5, prefix: 'rehearsal-', offlineRate: 0.4 })).toEqual(plan);
    const other = planDevices({ ...BASE, seed: 8 });
    expect(other.map((d) => d.offline)).not.toEqual(planDevices(BASE).map((d) => d.offline));
  });

  it('gives each job exact counts of failures and guardrail failures, the same for the same seed and job', () => {
    const outcomes = planOutcomes(BASE, 'deploy-1');
    expect(outcomes.filter((o) => o === 'fail')).toHaveLength(countOf(50, 0.2));
    expect(outcomes.filter((o) => o === 'guardrail-fail')).toHaveLength(countOf(50, 0.1));
    expect(planOutcomes(BASE, 'deploy-1')).toEqual(outcomes);
    // Another job (a rollback is one) draws other devices.
    expect(planOutcomes(BASE, 'deploy-2')).not.toEqual(outcomes);
  });

  it.each([
    [{ devices: 0 }, /--devices 0 is not a positive integer/],
    [{ failRate: 1.5 }, /--fail-rate 1.5 is not a share between 0 and 1/],
    [{ offlineRate: -0.1 }, /--offline-rate -0.1/],
    [{ failRate: 0.6, guardrailFailRate: 0.6 }, /add up to more than 1/],
    [{ targets: [] }, /every --targets share must be a number above 0/],
  ])('refuses %j with INVALID_ARGUMENT', (bad, message) => {
    expect(() => planDevices({ ...BASE, ...bad })).toThrow(message);
    try {
      planDevices({ ...BASE, ...bad });
    } catch (error) {
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
  });
});
