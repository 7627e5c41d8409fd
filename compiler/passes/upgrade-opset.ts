import type { GraphProto, NodeProto } from 'onnx-buf';
import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { DType } from '../../runtime/tensor/index.js';
import { NameGenerator, getAttribute, mainGraph, modelGraphs, opsetVersion } from '../onnx/index.js';
import { OPSET_HISTORY, UPGRADE_TARGET_MAX, type Converter } from '../quantize/opset-history.js';
import { inferValueTypes } from '../quantize/ort-model.js';
import { inferRanks } from '../quantize/ranks.js';
import type { Pass } from './types.js';

/**
 * Raises the default-domain opset import of a model (e.g. Paddle2ONNX's opset 9 to 13, where DequantizeLinear gains
 * `axis` for per-channel weights). An import covers every node, so each node must mean the same under the new
 * version: ops whose schema changed in between are rewritten (attributes that became inputs, Softmax's axis
 * semantics), and an op that cannot be rewritten, or that the table does not know, refuses the whole upgrade with
 * OPSET_UPGRADE_FAILED naming the nodes. Nothing is edited unless every node converts.
 */
const log = logger('compiler.upgrade-opset');

export interface UpgradeOpsetOptions {
  /** Target default-domain opset version. */
  readonly to: number;
}

/** [onnx Versioning.md, "Released Versions"] the IR version each opset needs. */
const MIN_IR_FOR_OPSET: readonly (readonly [number, number])[] = Object.freeze([
  [10, 5],
  [11, 6],
  [12, 7],
]);

interface Planned {
  readonly graph: GraphProto;
  readonly node: NodeProto;
  readonly apply: () => void;
}

function describe(node: NodeProto): string {
  return node.name === '' ? `${node.opType}(${node.output.join(', ')})` : `"${node.name}" (${node.opType})`;
}

/** Schema version a node uses under an opset import: the newest since-version not above it. */
function schemaVersion(history: readonly number[], opset: number): number | undefined {
  let version: number | undefined;
  for (const v of history) if (v <= opset) version = v;
  return version;
}

/** Inputs whose dtype a converter needs (a Clip's bounds and a Pad's value become tensors of the input's type). */
function needsDtype(node: NodeProto): boolean {
  return (
    (node.opType === 'Clip' && (getAttribute(node, 'min') !== undefined || getAttribute(node, 'max') !== undefined)) ||
    (node.opType === 'Pad' && getAttribute(node, 'value') !== undefined)
  );
}

export const upgradeOpset: Pass<UpgradeOpsetOptions> = async (model, context, options) => {
  const proto = model.proto;
  const from = opsetVersion(proto, '');
  const to = options.to;
  if (from === undefined) {
    throw new OutpostError('MODEL_INVALID', `${model.source} imports no default-domain opset`);
  }
  if (from >= to) return model;
  if (to > UPGRADE_TARGET_MAX) {
    throw new OutpostError(
      'OPSET_UPGRADE_FAILED',
      `cannot upgrade ${model.source} to opset ${to}: the conversion table reaches opset ${UPGRADE_TARGET_MAX}`,
      { details: { from, to, max: UPGRADE_TARGET_MAX } },
    );
  }
  if (proto.functions.length > 0) {
    throw new OutpostError(
      'OPSET_UPGRADE_FAILED',
      `cannot upgrade ${model.source}: it has model-local functions, whose bodies the upgrade does not convert`,
      { details: { functions: proto.functions.map((f) => f.name) } },
    );
  }
  const main = mainGraph(proto);
  const dtypeNames = main.node.filter(needsDtype).map((n) => n.input[0] ?? '');
  const inferred = await inferValueTypes(model, dtypeNames, context.workDir);
  const dtypes = new Map<string, DType | undefined>([...inferred].map(([name, t]) => [name, t.dtype]));
  const names = new NameGenerator(proto);
  const plans: Planned[] = [];
  const failures: { node: string; op: string; reason: string }[] = [];
  for (const graph of modelGraphs(proto)) {
    const ranks = inferRanks(graph);
    for (const node of graph.node) {
      if (node.domain !== '' && node.domain !== 'ai.onnx') continue;
      const history = OPSET_HISTORY[node.opType];
      if (history === undefined) {
        failures.push({ node: describe(node), op: node.opType, reason: 'not in the opset upgrade table' });
        continue;
      }
      const current = schemaVersion(history.versions, from);
      if (current === undefined) {
        failures.push({ node: describe(node), op: node.opType, reason: `does not exist at opset ${from}` });
        continue;
      }
      for (const version of history.versions) {
        if (version <= current || version > to) continue;
        const change = history.changes?.[version];
        if (change === undefined) continue; // the newer schema accepts everything the older one did
        const outcome: ReturnType<Converter> =
          typeof change === 'string' ? change : change(node, { graph, names, ranks, dtypes });
        if (typeof outcome === 'string') {
          failures.push({ node: describe(node), op: node.opType, reason: `${node.opType}-${version}: ${outcome}` });
        } else {
          plans.push({ graph, node, apply: outcome });
        }
      }
    }
  }
  if (failures.length > 0) {
    const shown = failures.slice(0, 5).map((f) => `${f.node}: ${f.reason}`);
    throw new OutpostError(
      'OPSET_UPGRADE_FAILED',
      `cannot upgrade ${model.source} from opset ${from} to ${to}: ${shown.join('; ')}${failures.length > 5 ? `; and ${failures.length - 5} more` : ''}`,
      { details: { from, to, failures } },
    );
  }
  for (const plan of plans) plan.apply();
  for (const entry of proto.opsetImport)
    if (entry.domain === '' || entry.domain === 'ai.onnx') entry.version = BigInt(to);
  let ir = 7; // opset 12 and 13 both need IR 7
  for (const [opset, version] of MIN_IR_FOR_OPSET) if (to >= opset) ir = Math.max(ir, version);
  if (proto.irVersion < BigInt(ir)) proto.irVersion = BigInt(ir);
  log.debug({ source: model.source, from, to, rewritten: plans.length }, 'opset upgraded');
  return model;
};
