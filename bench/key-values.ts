/**
 * A bench's flat figures: one JSON object with `--json`, else aligned `key  value` lines (numbers to 4 places
 * unless whole). Shared by the delivery benches that report a flat record (variants.ts, pipeline-fetch.ts).
 */
export function printKeyValues(results: Readonly<Record<string, number | string>>, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    return;
  }
  const rows = Object.entries(results).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v] as const);
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}

function round(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(4);
}
