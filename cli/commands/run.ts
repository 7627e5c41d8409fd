import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel, type Model } from '../../runtime/model/index.js';
import { postprocess, type PostprocessResult } from '../../runtime/pipeline/index.js';
import { tensorToJson } from '../../runtime/tensor/index.js';
import type { TensorValue } from '../../runtime/backends/index.js';
import { readInputs } from '../inputs.js';
import { isPipelineArtifact } from '../../runtime/pipeline/index.js';
import { runPipelineCommand } from '../pipeline-run.js';
import { collect } from '../options.js';
import { formatNumber, print, printJson } from '../output.js';
import { addModelOptions, loadOptions, type ModelOptions } from './shared.js';

interface RunOptions extends ModelOptions {
  input: string[];
}

async function labelsOf(model: Model): Promise<string[] | undefined> {
  const file = model.manifest.pipeline.labels;
  if (file === undefined || model.artifactDir === undefined) return undefined;
  return (await readFile(join(model.artifactDir, file), 'utf8')).split('\n').filter((l) => l.length > 0);
}

function preview(tensor: TensorValue, count = 8): string {
  const values = Array.from(tensor.data as ArrayLike<number | bigint | string>).slice(0, count);
  const text = values.map((v) => (typeof v === 'number' ? formatNumber(v) : String(v))).join(', ');
  return tensor.data.length > count ? `${text}, … (${tensor.data.length} values)` : text;
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command('run')
      .description('run one inference on an artifact or model and print the outputs')
      .argument('<artifact|model>', 'artifact directory or .tar.gz, or a .onnx/.ort file')
      .requiredOption(
        '-i, --input <file>',
        'input: .json, .npy or an image; name=file for one of several inputs (repeatable)',
        collect,
      ),
  ).action(async (path: string, opts: RunOptions) => {
    if (await isPipelineArtifact(path)) {
      await runPipelineCommand(path, opts);
      return;
    }
    const model = await loadModel(path, { ...loadOptions(opts), warmup: 0 });
    try {
      const feeds = await readInputs(opts.input, model, opts.inputShape ?? {});
      const started = performance.now();
      const outputs = await model.infer(feeds);
      const latencyMs = performance.now() - started;
      const first = model.outputs[0]?.name ?? '';
      const post: PostprocessResult | undefined = postprocess(
        model.manifest.pipeline.postprocess,
        outputs,
        first,
        await labelsOf(model),
      );
      if (opts.json === true) {
        printJson({
          model: model.name,
          version: model.version,
          variant: model.variant.id,
          backend: model.backend,
          ...(model.fallbackReason === undefined ? {} : { fallbackReason: model.fallbackReason }),
          latency_ms: latencyMs,
          outputs: Object.fromEntries(Object.entries(outputs).map(([n, t]) => [n, tensorToJson(t)])),
          ...(post === undefined ? {} : { postprocess: { ...post, probabilities: undefined } }),
        });
        return;
      }
      print(
        `${model.name}@${model.version}  variant ${model.variant.id}  backend ${model.backend}  ${formatNumber(latencyMs)} ms`,
      );
      if (model.fallbackReason !== undefined) print(`  (fallback: ${model.fallbackReason})`);
      for (const [name, tensor] of Object.entries(outputs)) {
        print(`  ${name}  ${tensor.type}[${tensor.dims.join(', ')}]  ${preview(tensor)}`);
      }
      for (const c of post?.top ?? []) print(`  #${c.index}  ${formatNumber(c.score)}  ${c.label ?? ''}`);
      if (post?.argmax !== undefined) print(`  argmax ${post.argmax}`);
    } finally {
      await model.release();
    }
  });
}
