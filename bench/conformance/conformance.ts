/**
 * ONNX conformance of `outpost compile --target host --precision fp32`, the README's figure:
 *
 *   npx tsx bench/conformance/conformance.ts [--root /usr/share/libonnx-testdata/data] [--family node,…]
 *                                            [--filter regex] [--budget 20] [--json]
 *
 * Counts only tests raw onnxruntime-node passes on the original model; reports how many compile and match, how many
 * are refused with a typed error (by code, with the constructs named), crash, or give a different answer.
 * Progress goes to stderr; the table (or --json) to stdout. See bench/conformance/cases.ts.
 */
import { parseArgs } from 'node:util';
import { Evaluator } from '../../compiler/evaluate/evaluator.js';
import { setLogLevel } from '../../runtime/log.js';
import { FAMILIES, TESTDATA_ROOT, listCases, runCase, type Outcome } from './cases.js';

const { values } = parseArgs({
  options: {
    root: { type: 'string', default: TESTDATA_ROOT },
    family: { type: 'string', default: FAMILIES.join(',') },
    filter: { type: 'string' },
    budget: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});

setLogLevel('warn');
const filter = values.filter === undefined ? undefined : new RegExp(values.filter);
const cases = (await listCases(values.root, values.family.split(','))).filter(
  (c) => filter === undefined || filter.test(c.name),
);
if (cases.length === 0) {
  console.error(`no ONNX backend tests under ${values.root} (Debian: apt-get install libonnx-testdata)`);
  process.exit(1);
}

const budgetSeconds = Number(values.budget);
const evaluator = new Evaluator({ budget: { seconds: budgetSeconds, memoryBytes: 4 * 2 ** 30 } });
const results: { family: string; name: string; outcome: Outcome; seconds: number }[] = [];
const started = performance.now();
try {
  for (const [i, c] of cases.entries()) {
    const t0 = performance.now();
    const outcome = await runCase(c, { budgetSeconds, evaluator });
    const seconds = (performance.now() - t0) / 1000;
    results.push({ family: c.family, name: c.name, outcome, seconds });
    const detail =
      outcome.kind === 'refused' ? ` ${outcome.code}` : outcome.kind === 'match' ? ` ${outcome.format}` : '';
    process.stderr.write(
      `[${new Date().toISOString().slice(11, 19)}] ${i + 1}/${cases.length} ${c.family}/${c.name}: ${outcome.kind}${detail} (${seconds.toFixed(1)} s)\n`,
    );
  }
} finally {
  evaluator.close();
}

const counted = results.filter((r) => r.outcome.kind !== 'raw-fails');
const by = (kind: Outcome['kind']) => counted.filter((r) => r.outcome.kind === kind);
const refusals = new Map<string, string[]>();
for (const r of by('refused')) {
  const code = r.outcome.kind === 'refused' ? r.outcome.code : '';
  refusals.set(code, [...(refusals.get(code) ?? []), r.name]);
}
const summary = {
  tests: results.length,
  raw_ort_passes: counted.length,
  compiled_and_match: by('match').length,
  graded: by('match').filter((r) => r.outcome.kind === 'match' && r.outcome.graded).length,
  refused: Object.fromEntries([...refusals].map(([code, names]) => [code, names.length])),
  crash: by('crash').length,
  different: by('different').length,
  slowest_s: Math.max(0, ...counted.map((r) => r.seconds)),
  seconds: (performance.now() - started) / 1000,
};

if (values.json) {
  console.log(JSON.stringify({ summary, results }, null, 2));
} else {
  console.log(`ONNX backend tests under ${values.root} (${values.family}), --target host --precision fp32\n`);
  console.log(`| tests | raw ORT passes | compile + match | of which graded | refused (typed) | crash | different |`);
  console.log(`| --- | --- | --- | --- | --- | --- | --- |`);
  const refusedTotal = by('refused').length;
  console.log(
    `| ${summary.tests} | ${summary.raw_ort_passes} | ${summary.compiled_and_match} | ${summary.graded} | ${refusedTotal} | ${summary.crash} | ${summary.different} |`,
  );
  for (const [code, names] of refusals) console.log(`\nrefused ${code} (${names.length}): ${names.join(', ')}`);
  for (const r of [...by('refused'), ...by('crash'), ...by('different')]) {
    const o = r.outcome;
    const text = o.kind === 'refused' || o.kind === 'crash' ? o.message : o.kind === 'different' ? o.why : '';
    console.log(`  ${r.family}/${r.name}: ${o.kind}: ${text.slice(0, 300)}`);
  }
  console.log(`\n${summary.seconds.toFixed(0)} s in all; slowest test ${summary.slowest_s.toFixed(1)} s`);
}
