/** bench/server/server.ts's human output: one Markdown table per part, then the goals and the host. */
import type { Report } from './report.js';

function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

export function printTables(r: Report): void {
  const out: string[] = [];
  const added = r.latency.added_over_model_infer;
  const addedOf: Record<string, { p50_ms: number; p99_ms: number } | undefined> = {
    'ModelService.infer': added.service,
    'HTTP JSON, TCP': added.json_tcp,
    'HTTP JSON, unix socket': added.json_unix,
    'HTTP binary, TCP': added.binary_tcp,
    'bare node:http, TCP (floor)': added.node_http_floor,
    'HTTP JSON, TCP, batching': added.json_tcp_batching,
  };
  out.push(`## 1. Added latency, ${r.latency.model} (in-process server, 1 client, keep-alive)\n`);
  out.push(
    table(
      ['subject', 'p50 ms', 'p99 ms', 'mean ms', 'added p50 ms', 'added p99 ms'],
      Object.entries(r.latency.subjects).map(([name, s]) => [
        name,
        s.p50_ms,
        s.p99_ms,
        s.mean_ms,
        addedOf[name]?.p50_ms ?? '–',
        addedOf[name]?.p99_ms ?? '–',
      ]),
    ),
  );
  out.push(`\n## 2. Binary vs JSON, ${r.binary.model} (in-process server, bodies encoded beforehand)\n`);
  out.push(
    table(
      ['subject', 'p50 ms', 'p99 ms', 'mean ms'],
      Object.entries(r.binary.subjects).map(([name, s]) => [name, s.p50_ms, s.p99_ms, s.mean_ms]),
    ),
  );
  out.push(
    `\nbody: JSON ${r.binary.body_bytes.json} bytes, binary ${r.binary.body_bytes.binary} bytes; ` +
      `binary ${r.binary.speedup_p50}× faster at p50`,
  );
  const { clients, rounds, sliceS } = r.plan.throughput;
  out.push(
    `\n## 3. Throughput, ${clients} closed-loop clients, ${rounds} × ${sliceS} s per scheduler, interleaved ` +
      '(servers in child processes)\n',
  );
  out.push(
    table(
      ['model', 'scheduler', 'req/s', 'p50 ms', 'p99 ms', 'mean batch rows', 'errors'],
      r.throughput.map((t) => [t.model, t.scheduler, t.req_per_s, t.p50_ms, t.p99_ms, t.mean_batch_rows, t.errors]),
    ),
  );
  out.push(
    `\nbatching: maxBatchSize ${r.batching.maxBatchSize} rows, maxQueueDelayMs ${r.batching.maxQueueDelayMs} ms`,
  );
  const l = r.load;
  out.push(`\n## 4. Load test, autocannon, ${l.model} (server in a child process)\n`);
  out.push(
    table(
      [
        'connections',
        's',
        'req/s',
        'p50 ms',
        'p99 ms',
        'max ms',
        'errors',
        'timeouts',
        'non-2xx',
        'RSS MB start/before/peak/after/after GC',
        'heap MB before/after GC',
      ],
      [
        [
          l.connections,
          l.seconds,
          l.req_per_s,
          l.latency_p50_ms,
          l.latency_p99_ms,
          l.latency_max_ms,
          l.errors,
          l.timeouts,
          l.non2xx,
          `${l.rss_mb.start}/${l.rss_mb.before}/${l.rss_mb.peak}/${l.rss_mb.after}/${l.rss_mb.after_gc}`,
          `${l.heap_used_mb.before}/${l.heap_used_mb.after_gc}`,
        ],
      ],
    ),
  );
  out.push('\n## Goals\n');
  out.push(
    table(
      ['goal', 'target', 'measured', 'verdict'],
      r.goals.map((g) => [g.goal, g.target, g.measured, g.verdict]),
    ),
  );
  const h = r.host;
  out.push(
    `\n${h.cpuModel}, ${h.cpus} cpus, node ${h.node}; load average ${h.loadavg_start} at start, ${h.loadavg_end} at end` +
      (r.quick ? '; --quick run' : ''),
  );
  process.stdout.write(`${out.join('\n')}\n`);
}
