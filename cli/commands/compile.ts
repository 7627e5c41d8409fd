import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import os from 'node:os';
import { compile, defaultRunBudget, parseBudget, type CompileReport } from '../../compiler/index.js';
import type { PostprocessStep } from '../../runtime/artifact/index.js';
import { choice, collect, parseInputShape } from '../options.js';
import { OutpostError } from '../../runtime/errors.js';
import { parsePositiveInt } from '../options.js';
import { formatBytes, print, printJson, table } from '../output.js';
import { ProgressReporter } from '../progress.js';

interface CompileFlags {
  target: string;
  output: string;
  precision: 'auto' | 'fp32' | 'fp16' | 'int8';
  inputShape?: Record<string, number[]>;
  calibration?: string;
  calibrationMethod: 'minmax' | 'percentile' | 'entropy';
  baseline?: string;
  quantization: 'auto' | 'static' | 'dynamic';
  requireInt8?: string[];
  preprocess?: string;
  accuracyBudget?: string;
  allowAccuracyLoss?: boolean;
  tune?: boolean;
  ortFormat?: boolean;
  signKey?: string;
  name?: string;
  modelVersion?: string;
  labels?: string;
  postprocess?: PostprocessStep[];
  force?: boolean;
  json?: boolean;
  runTimeout?: number;
  runMemory?: number;
}

/** After SIGINT/SIGTERM, how long the compile may take to wind down before the process exits regardless. */
const FORCED_EXIT_MS = 5_000;

/** `--postprocess softmax,topk=5` → steps. */
function parsePostprocess(text: string): PostprocessStep[] {
  return text.split(',').map((part) => {
    const [op, value] = part.split('=');
    if (op === 'softmax' || op === 'argmax') return { op, axis: -1 };
    if (op === 'topk') {
      const k = Number(value ?? 5);
      if (!Number.isInteger(k) || k < 1)
        throw new InvalidArgumentError(`topk=${value ?? ''} is not a positive integer`);
      return { op, k };
    }
    throw new InvalidArgumentError(`"${part}" is not one of softmax, argmax, topk=K`);
  });
}

function printReport(report: CompileReport): void {
  print(`compiled for ${report.target} in ${report.seconds.toFixed(1)} s → ${report.output}`);
  print(
    report.selection === 'fixed'
      ? `selected: ${report.selected} (fastest within budget, measured here)`
      : `ranked for the device to choose at install (rank 1: ${report.selected})`,
  );
  print('');
  print(
    table(
      [
        'rank',
        'variant',
        'precision',
        'format',
        'size',
        'cosine',
        'max |Δ|',
        'top-1',
        'p50 ms',
        'float nodes',
        'budget',
      ],
      report.variants.map((v, i) => [
        i + 1,
        v.id,
        v.precision,
        v.format,
        formatBytes(v.bytes),
        v.accuracy?.cosine.toFixed(5) ?? 'not graded',
        v.accuracy?.max_abs_err.toPrecision(3) ?? '',
        v.accuracy?.top1_agreement === undefined ? '' : `${(v.accuracy.top1_agreement * 100).toFixed(1)}%`,
        v.latency_p50_ms === undefined ? '' : v.latency_p50_ms.toFixed(3),
        v.excluded_nodes.length,
        v.within_budget ? 'ok' : 'WAIVED',
      ]),
    ),
  );
  for (const v of report.variants) {
    for (const note of v.notes) print(`  ${v.id}: ${note}`);
    print(`  ${v.id}: format ${v.format}: ${v.format_reason}`);
    for (const e of v.excluded_nodes.slice(0, 10)) print(`  ${v.id}: kept float ${e.node} (${e.op}): ${e.reason}`);
    if (v.excluded_nodes.length > 10) print(`  ${v.id}: … and ${v.excluded_nodes.length - 10} more (see --json)`);
  }
  for (const r of report.rejected) print(`  rejected ${r.id}: ${r.reason}`);
  const c = report.calibration;
  print(
    `  calibration: ${c.source}, ${c.samples} samples (${c.method ?? ''}), evaluated on ${c.evaluation_samples} held out`,
  );
  for (const w of report.warnings) print(`  warning: ${w}`);
}

export function register(program: Command): void {
  program
    .command('compile')
    .description('quantise and optimise an ONNX model for a target; write a signed, self-describing artifact')
    .argument('<model.onnx>', 'the trained model')
    .requiredOption('--target <arch[:cpu]|host>', 'target profile (see `outpost targets`)')
    .requiredOption('-o, --output <artifact>', 'artifact directory, or a path ending in .tar.gz')
    .option('--precision <p>', 'auto, fp32, fp16 or int8', choice(['auto', 'fp32', 'fp16', 'int8'] as const), 'auto')
    .option('--input-shape <name=d0,d1,…>', 'fix an input shape (repeatable)', parseInputShape)
    .option(
      '--calibration <dir|file|synthetic>',
      'calibration and evaluation inputs: .npy/.json tensors or images',
      'synthetic',
    )
    .option(
      '--calibration-method <m>',
      'minmax, percentile or entropy',
      choice(['minmax', 'percentile', 'entropy'] as const),
      'minmax',
    )
    .option(
      '--baseline <dir|file>',
      'inputs the drift baseline (baseline.json) describes: .npy/.json tensors or images (default: the calibration set)',
    )
    .option(
      '--quantization <mode>',
      'auto (static for conv nets, dynamic otherwise), static or dynamic',
      choice(['auto', 'static', 'dynamic'] as const),
      'auto',
    )
    .option(
      '--require-int8 <node|op>',
      'fail (naming it) rather than skip when this node or op type cannot be quantised (repeatable)',
      collect,
    )
    .option(
      '--preprocess <spec>',
      'image pre-processing for image calibration data, recorded in the artifact (size=224x224,resize=center-crop,mean=…,std=…)',
    )
    .option('--accuracy-budget <budget>', 'minimum cosine (0.99) or cosine=…,top1=…,max_abs=…,relative=…')
    .option('--allow-accuracy-loss', 'ship variants that miss the budget, flagged in the manifest')
    .option('--tune', 'measure every variant on this machine and pick the fastest (always on for --target host)')
    .option('--ort-format', 'ship ONNX Runtime format where both backends load it (default for --target host)')
    .option('--no-ort-format', 'always ship .onnx')
    .option('--sign-key <key>', 'ed25519 private key (see `outpost keygen`)')
    .option('--name <name>', 'artifact name (default: the model file name)')
    .option('--model-version <version>', 'artifact version', '1.0.0')
    .option('--labels <file>', 'class labels, one per line')
    .option('--postprocess <steps>', 'softmax, argmax, topk=K (comma-separated)', parsePostprocess)
    .option('--force', 'replace an existing output')
    .option('--run-timeout <seconds>', 'time one model run may take before it is killed (default 60)', parsePositiveInt)
    .option(
      '--run-memory <MiB>',
      "evaluator memory past which a run is killed (default half the machine's)",
      parsePositiveInt,
    )
    .option('--json', 'print the compile report as JSON')
    .action(async (model: string, flags: CompileFlags) => {
      const progress = new ProgressReporter('compile');
      const budget = defaultRunBudget();
      // SIGINT/SIGTERM: the compile kills its evaluator and removes its work directory, then the command ends.
      const controller = new AbortController();
      const interrupt = (signal: NodeJS.Signals): void => {
        controller.abort(
          new OutpostError('INTERRUPTED', `compile interrupted by ${signal}; its work directory was removed`, {
            details: { signal },
          }),
        );
        // Should the step in flight not return (a native call), end anyway: nothing is left on disk by now.
        setTimeout(() => process.exit(128 + os.constants.signals[signal]), FORCED_EXIT_MS).unref();
      };
      process.once('SIGINT', interrupt);
      process.once('SIGTERM', interrupt);
      let report;
      try {
        report = await compile({
          model,
          target: flags.target,
          output: flags.output,
          precision: flags.precision,
          inputShapes: flags.inputShape,
          calibration: flags.calibration,
          calibrationMethod: flags.calibrationMethod,
          ...(flags.baseline === undefined ? {} : { baseline: flags.baseline }),
          quantization: flags.quantization,
          requireQuantized: flags.requireInt8,
          preprocess: flags.preprocess,
          ...(flags.accuracyBudget === undefined ? {} : { budget: parseBudget(flags.accuracyBudget) }),
          allowAccuracyLoss: flags.allowAccuracyLoss === true,
          tune: flags.tune === true,
          ortFormat: flags.ortFormat,
          signKey: flags.signKey,
          name: flags.name,
          version: flags.modelVersion,
          labels: flags.labels,
          postprocess: flags.postprocess,
          overwrite: flags.force === true,
          runBudget: {
            seconds: flags.runTimeout ?? budget.seconds,
            memoryBytes: flags.runMemory === undefined ? budget.memoryBytes : flags.runMemory * 2 ** 20,
          },
          onProgress: (stage, done, total) => progress.update(stage, done, total),
          signal: controller.signal,
        });
      } finally {
        process.off('SIGINT', interrupt);
        process.off('SIGTERM', interrupt);
        progress.done();
      }
      if (flags.json === true) printJson(report);
      else printReport(report);
    });
}
