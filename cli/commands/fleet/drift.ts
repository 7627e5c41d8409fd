import type { ThingView } from '../../../fleet/index.js';
import { print, table } from '../../output.js';

/** One monitored version on one thing, as `fleet things --drift` lists it. */
export interface DriftRow {
  readonly thing: string;
  readonly connected: boolean;
  readonly model: string;
  readonly version: string;
  readonly samples: number;
  readonly drifting: boolean;
  /** The score furthest above (or closest to) its threshold. */
  readonly worst?: {
    readonly feature: string;
    readonly stat: string;
    readonly value: number;
    readonly threshold: number;
  };
}

/** Drifting versions first, then by how close the worst score is to its threshold. */
export function driftRows(things: readonly ThingView[]): DriftRow[] {
  const rows = things.flatMap((t) =>
    t.drift.map((d) => {
      const worst = [...d.scores].sort((a, b) => b.value / b.threshold - a.value / a.threshold)[0];
      return {
        thing: t.thingName,
        connected: t.connected,
        model: d.model,
        version: d.version,
        samples: d.samples,
        drifting: d.drifting,
        ...(worst === undefined ? {} : { worst }),
      };
    }),
  );
  const ratio = (r: DriftRow) => (r.worst === undefined ? -1 : r.worst.value / r.worst.threshold);
  return rows.sort((a, b) => Number(b.drifting) - Number(a.drifting) || ratio(b) - ratio(a));
}

export function printDrift(rows: readonly DriftRow[]): void {
  if (rows.length === 0) {
    print('no drift figures yet: agents report them once a served version with a baseline has had calls');
    return;
  }
  print(
    table(
      ['THING', 'MODEL', 'VERSION', 'DRIFT', 'CALLS', 'WORST FEATURE', 'STAT', 'SCORE', 'THRESHOLD'],
      rows.map((r) => [
        r.thing,
        r.model,
        r.version,
        r.drifting ? 'DRIFTING' : 'ok',
        r.samples,
        r.worst?.feature ?? '-',
        r.worst?.stat ?? '-',
        r.worst === undefined ? '-' : r.worst.value.toFixed(3),
        r.worst === undefined ? '-' : String(r.worst.threshold),
      ]),
    ),
  );
  const drifting = rows.filter((r) => r.drifting).length;
  print(`\n${drifting} of ${rows.length} monitored versions drifting`);
}
