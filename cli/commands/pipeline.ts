import type { Command } from 'commander';
import { buildPipeline, type PipelineBuildReport } from '../../compiler/index.js';
import { print, printJson, table } from '../output.js';

interface BuildFlags {
  target: string;
  output: string;
  signKey?: string;
  store?: string;
  force?: boolean;
  testInput?: string[];
  json?: boolean;
}

/** `--test-input [name=]file`: one case; a bare file feeds the pipeline's only input (named at build). */
function testCase(flag: string): Record<string, string> {
  const eq = flag.indexOf('=');
  return eq > 0 ? { [flag.slice(0, eq)]: flag.slice(eq + 1) } : { '': flag };
}

function printReport(report: PipelineBuildReport): void {
  print(`built pipeline ${report.name}@${report.version} in ${report.seconds.toFixed(1)} s → ${report.output}`);
  print(`  steps    ${report.steps.join(' → ')}`);
  print(
    `  vectors  ${report.testVectors === 0 ? 'none (add testVectors or --test-input)' : `${report.testVectors} case(s)`}`,
  );
  print(
    table(
      ['model', 'how', 'variants'],
      report.models.map((m) => [m.key, m.how, m.variants.join(', ') || '—']),
    ),
  );
  for (const o of report.outputs) print(`  output  ${o.name}  ${o.dtype}[${o.shape.join(', ')}]`);
  print(`  signed   ${report.signer ?? 'no (pass --sign-key)'}`);
}

/**
 * `outpost pipeline build <pipeline.json> --target <t> -o <dir>`: compiles or bundles each model, validates the
 * whole definition (shapes and dtypes across every mapping, transform parameters, key files) and writes one signed
 * pipeline artifact that `inspect`, `run` and `serve` accept like a model artifact (docs/pipelines.md).
 */
export function register(program: Command): void {
  const pipeline = program
    .command('pipeline')
    .description('inference pipelines: models and built-in transforms as one artifact');
  pipeline
    .command('build')
    .description('build a pipeline artifact from a pipeline.json')
    .argument('<pipeline.json>', 'the pipeline definition (docs/pipelines.md)')
    .option('--target <target>', 'target for the models compiled (x86_64, arm64, cuda, host)', 'host')
    .requiredOption('-o, --output <dir>', 'artifact directory, or a path ending in .tar.gz')
    .option('--sign-key <key>', 'ed25519 private key (see `outpost keygen`)')
    .option('--store <dir>', 'where models referenced by name@version are installed (<store>/<name>/<version>)')
    .option('--force', 'replace an existing output directory')
    .option(
      '--test-input <[name=]file...>',
      'a sample recorded as a test vector (one case each; replaces pipeline.json testVectors)',
    )
    .option('--json', 'print the build report as JSON')
    .action(async (source: string, flags: BuildFlags) => {
      const report = await buildPipeline({
        source,
        target: flags.target,
        output: flags.output,
        ...(flags.signKey === undefined ? {} : { signKey: flags.signKey }),
        ...(flags.store === undefined ? {} : { store: flags.store }),
        ...(flags.force === true ? { overwrite: true } : {}),
        ...(flags.testInput === undefined ? {} : { testInputs: flags.testInput.map(testCase) }),
        onProgress: (stage) => process.stderr.write(`pipeline build: ${stage}\n`),
      });
      if (flags.json === true) printJson(report);
      else printReport(report);
    });
}
