import { OutpostError } from '../../errors.js';
import { formatFieldPath } from '../../artifact/parse.js';
import { splitRef, type Cascade, type CascadeStep } from '../../artifact/cascade.js';
import type { TensorSpec } from '../../artifact/manifest.js';
import { TRANSFORMS, type AnyTransform } from '../transforms/index.js';

/**
 * A pipeline definition checked end to end before anything runs (docs/pipelines.md, "Validation"): every step
 * names a known transform or model, every mapping names a tensor some step (or the pipeline's inputs) produces, the
 * steps form no cycle, each transform's parameters are in range, and across every mapping the dtype is one the
 * consumer accepts, the rank is the one it needs and fixed dimensions agree. Each failure is a typed error naming
 * the step and the tensor. The result is the steps in an order that runs each after everything it reads.
 */

/** What validation needs of a model: its inputs and outputs (a loaded model's, or a bundled manifest's). */
export interface ModelSignature {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

export type PlannedStep =
  | {
      readonly kind: 'transform';
      readonly step: CascadeStep;
      readonly transform: AnyTransform;
      readonly params: unknown;
    }
  | { readonly kind: 'model'; readonly step: CascadeStep; readonly model: string };

export interface Plan {
  readonly steps: readonly PlannedStep[];
  /** Every tensor by reference (`step.tensor`, `inputs.name`) with its spec. */
  readonly tensors: ReadonlyMap<string, TensorSpec>;
  /** The pipeline's outputs, named as `cascade.outputs` names them. */
  readonly outputs: readonly TensorSpec[];
}

function invalid(message: string, details: Record<string, unknown>): OutpostError {
  return new OutpostError('PIPELINE_INVALID', message, { details });
}

/** Steps in dependency order (Kahn), or PIPELINE_INVALID naming the steps of a cycle. */
export function orderSteps(steps: readonly CascadeStep[]): CascadeStep[] {
  const byId = new Map<string, CascadeStep>();
  for (const step of steps) {
    if (byId.has(step.id)) throw invalid(`step "${step.id}" is defined twice`, { step: step.id });
    byId.set(step.id, step);
  }
  const needs = new Map<string, Set<string>>();
  for (const step of steps) {
    const deps = new Set<string>();
    for (const [input, ref] of Object.entries(step.inputs)) {
      const { step: from } = splitRef(ref);
      if (from === 'inputs') continue;
      if (!byId.has(from)) {
        throw invalid(
          `step "${step.id}" input "${input}" reads "${ref}", but there is no step "${from}"; steps: ${[...byId.keys()].join(', ')}`,
          {
            step: step.id,
            tensor: input,
            ref,
          },
        );
      }
      deps.add(from);
    }
    needs.set(step.id, deps);
  }
  const ordered: CascadeStep[] = [];
  const done = new Set<string>();
  while (ordered.length < steps.length) {
    const ready = steps.find((s) => !done.has(s.id) && [...(needs.get(s.id) ?? [])].every((d) => done.has(d)));
    if (ready === undefined) {
      const cycle = steps.filter((s) => !done.has(s.id)).map((s) => s.id);
      throw invalid(`the steps ${cycle.join(' → ')} form a cycle: each waits for another's output`, { steps: cycle });
    }
    ordered.push(ready);
    done.add(ready.id);
  }
  return ordered;
}

/** Where two specs disagree across a mapping, or undefined when the consumer can take the producer's tensor. */
function mismatch(
  from: TensorSpec,
  accepts: { dtypes: readonly string[]; rank?: number; shape?: TensorSpec['shape'] },
): string | undefined {
  if (!accepts.dtypes.includes(from.dtype)) return `dtype ${from.dtype}, expected ${accepts.dtypes.join(' or ')}`;
  const rank = accepts.rank ?? accepts.shape?.length;
  if (rank !== undefined && from.shape.length !== rank)
    return `rank ${from.shape.length} [${from.shape.join(', ')}], expected rank ${rank}`;
  if (accepts.shape !== undefined) {
    for (let axis = 0; axis < accepts.shape.length; axis++) {
      const want = accepts.shape[axis];
      const have = from.shape[axis];
      if (typeof want === 'number' && typeof have === 'number' && want !== have) {
        return `shape [${from.shape.join(', ')}], expected [${accepts.shape.join(', ')}] (axis ${axis}: ${have} ≠ ${want})`;
      }
    }
  }
  return undefined;
}

/**
 * Validates `cascade` against the pipeline's `inputs` and each model's signature (`models`, by key) and returns
 * the plan. Throws PIPELINE_INVALID, PIPELINE_MODEL_MISSING, TRANSFORM_PARAM_INVALID or PIPELINE_MAPPING_MISMATCH.
 */
export function planPipeline(
  cascade: Cascade,
  inputs: readonly TensorSpec[],
  models: Readonly<Record<string, ModelSignature>>,
): Plan {
  const tensors = new Map<string, TensorSpec>(inputs.map((i) => [`inputs.${i.name}`, i]));
  const planned: PlannedStep[] = [];
  for (const step of orderSteps(cascade.steps)) {
    const feeding = (name: string): TensorSpec => {
      const ref = step.inputs[name] as string;
      const spec = tensors.get(ref);
      if (spec === undefined) {
        const { step: from } = splitRef(ref);
        const known = [...tensors.keys()].filter((k) => k.startsWith(`${from}.`));
        throw invalid(
          `step "${step.id}" input "${name}" reads "${ref}", which "${from}" does not produce; it produces ${known.join(', ') || 'nothing'}`,
          {
            step: step.id,
            tensor: name,
            ref,
          },
        );
      }
      return spec;
    };
    const check = (name: string, accepts: Parameters<typeof mismatch>[1]) => {
      const spec = feeding(name);
      const why = mismatch(spec, accepts);
      if (why !== undefined) {
        throw new OutpostError(
          'PIPELINE_MAPPING_MISMATCH',
          `step "${step.id}" input "${name}" ← "${step.inputs[name]}": ${why}`,
          {
            details: { step: step.id, tensor: name, ref: step.inputs[name], shape: spec.shape, dtype: spec.dtype },
          },
        );
      }
      return spec;
    };
    let outputs: TensorSpec[];
    if (step.transform !== undefined) {
      const transform = TRANSFORMS[step.transform];
      if (transform === undefined) {
        throw invalid(
          `step "${step.id}": unknown transform "${step.transform}"; built in: ${Object.keys(TRANSFORMS).join(', ')}`,
          {
            step: step.id,
            transform: step.transform,
          },
        );
      }
      const parsed = transform.params.safeParse(step.params);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const param = formatFieldPath(issue?.path ?? []);
        throw new OutpostError(
          'TRANSFORM_PARAM_INVALID',
          `step "${step.id}" (${transform.op}) parameter ${param}: ${issue?.message ?? 'invalid'}`,
          {
            details: {
              step: step.id,
              transform: transform.op,
              param,
              problems: parsed.error.issues.map((i) => i.message),
            },
          },
        );
      }
      unknownInputs(
        step,
        transform.inputs.map((p) => p.name),
      );
      const specs: Record<string, TensorSpec> = {};
      for (const port of transform.inputs) {
        if (step.inputs[port.name] === undefined) {
          if (port.optional === true) continue;
          throw invalid(`step "${step.id}" (${transform.op}) needs input "${port.name}"`, {
            step: step.id,
            tensor: port.name,
          });
        }
        specs[port.name] = check(port.name, {
          dtypes: port.dtypes,
          ...(port.rank === undefined ? {} : { rank: port.rank }),
        });
      }
      outputs = transform.outputs(parsed.data, specs);
      planned.push({ kind: 'transform', step, transform, params: parsed.data });
    } else {
      const key = step.model as string;
      const model = models[key];
      if (model === undefined) {
        throw new OutpostError(
          'PIPELINE_MODEL_MISSING',
          `step "${step.id}" runs model "${key}", which the pipeline does not provide; models: ${Object.keys(models).join(', ') || 'none'}`,
          {
            details: { step: step.id, model: key },
          },
        );
      }
      unknownInputs(
        step,
        model.inputs.map((i) => i.name),
      );
      for (const input of model.inputs) {
        if (step.inputs[input.name] === undefined) {
          throw invalid(`step "${step.id}" (model "${key}") input "${input.name}" is not mapped`, {
            step: step.id,
            tensor: input.name,
          });
        }
        check(input.name, {
          dtypes: [input.dtype],
          shape: step.batch === undefined ? input.shape : ['items', ...input.shape.slice(1)],
        });
      }
      outputs = [...model.outputs];
      planned.push({ kind: 'model', step, model: key });
    }
    for (const out of outputs) tensors.set(`${step.id}.${out.name}`, out);
  }
  const outputs = Object.entries(cascade.outputs).map(([name, ref]) => {
    const spec = tensors.get(ref);
    if (spec === undefined)
      throw invalid(`output "${name}" is "${ref}", which no step produces`, { tensor: name, ref });
    return { ...spec, name };
  });
  return { steps: planned, tensors, outputs };
}

function unknownInputs(step: CascadeStep, known: readonly string[]): void {
  for (const name of Object.keys(step.inputs)) {
    if (!known.includes(name)) {
      throw invalid(`step "${step.id}" maps input "${name}", which it does not have; inputs: ${known.join(', ')}`, {
        step: step.id,
        tensor: name,
      });
    }
  }
}
