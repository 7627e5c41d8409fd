import { describe, expect, it } from 'vitest';
import { formatSeconds, ProgressReporter, type ProgressSink } from '../../cli/progress.js';

function sink(isTTY: boolean): ProgressSink & { text: string } {
  const s = { isTTY, text: '', write: (t: string) => (s.text += t) };
  return s;
}

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = Date.UTC(2026, 0, 1);
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('ProgressReporter', () => {
  it('on a terminal redraws one line in place, throttled, and clears it when done', () => {
    const out = sink(true);
    const c = clock();
    const p = new ProgressReporter('compile', { stream: out, quiet: false, now: c.now });
    p.update('calibrate', 0, 4);
    c.advance(10);
    p.update('calibrate', 1, 4); // within 100 ms: not drawn
    c.advance(200);
    p.update('calibrate', 2, 4);
    p.update('calibrate', 4, 4); // the end is always drawn
    p.done();
    const frames = out.text.split('\r\x1b[2K').filter((f) => f !== '');
    expect(frames).toEqual([
      'compile: calibrate [..............................] 0/4  0 s',
      'compile: calibrate [###############...............] 2/4  0 s',
      'compile: calibrate [##############################] 4/4  0 s',
    ]);
    expect(out.text.endsWith('\r\x1b[2K')).toBe(true);
    expect(out.text).not.toContain('\n');
  });

  it('elsewhere writes timestamped lines: a stage starting, every 10 s while it runs, and its end', () => {
    const out = sink(false);
    const c = clock();
    const p = new ProgressReporter('compile', { stream: out, quiet: false, now: c.now });
    p.update('grade int8', 0, 8);
    for (let i = 1; i < 8; i++) {
      c.advance(3000);
      p.update('grade int8', i, 8);
    }
    c.advance(3000);
    p.update('grade int8', 8, 8);
    p.update('benchmark int8', 0, 110);
    expect(out.text.split('\n').filter((l) => l !== '')).toEqual([
      '2026-01-01T00:00:00.000Z compile: grade int8 0/8',
      '2026-01-01T00:00:12.000Z compile: grade int8 4/8',
      '2026-01-01T00:00:24.000Z compile: grade int8 8/8 in 24.0 s',
      '2026-01-01T00:00:24.000Z compile: benchmark int8 0/110',
    ]);
  });

  it('prints nothing with --quiet, and formats counts (bytes) when asked', () => {
    const quiet = sink(false);
    new ProgressReporter('deploy', { stream: quiet, quiet: true }).update('download pi-1', 1, 2);
    expect(quiet.text).toBe('');
    const out = sink(false);
    const p = new ProgressReporter('deploy', { stream: out, quiet: false, format: (n) => `${n / 1024} KiB` });
    p.update('download pi-1', 512, 1024);
    p.line('pi-1: QUEUED → IN_PROGRESS');
    expect(out.text).toMatch(/ deploy: download pi-1 0\.5 KiB\/1 KiB\n.* deploy: pi-1: QUEUED → IN_PROGRESS\n$/);
  });

  it('with rate, adds done per second over the stage and the time left at that rate', () => {
    const out = sink(true);
    const c = clock();
    const p = new ProgressReporter('batch', { stream: out, quiet: false, now: c.now, rate: true });
    p.update('classifier@1.0.0', 0, 200);
    c.advance(4000);
    p.update('classifier@1.0.0', 50, 200);
    c.advance(4000);
    p.update('classifier@1.0.0', 200, 200);
    const frames = out.text.split('\r\x1b[2K').filter((f) => f !== '');
    expect(frames[0]).toMatch(/ 0\/200  0 s$/); // nothing done yet: no rate
    expect(frames[1]).toMatch(/ 50\/200  4 s  13\/s  ETA 12 s$/);
    expect(frames[2]).toMatch(/ 200\/200  8 s  25\/s$/); // finished: no ETA
    expect(formatSeconds(200)).toBe('3 min 20 s');
    expect(formatSeconds(7500)).toBe('2 h 05 min');
  });
});
