import type { NodeProto } from 'onnx-buf';
import { OutpostError, isOutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { DType } from '../../runtime/tensor/index.js';
import type { TensorRange } from '../calibration/calibrators.js';
import { graphAndSubgraphs, mainGraph, nodeSubgraphs, opsetVersion, valueTypes } from '../onnx/index.js';
import { constantSources } from '../quantize/constants.js';
import { inferValueTypes, nodeOutputs } from '../quantize/ort-model.js';
import { prepareForQuantization } from '../quantize/prepare.js';
import { emitQdq } from '../quantize/qdq-emit.js';
import { QDQ_OPS, qdqOp } from '../quantize/qdq-ops.js';
import { selectNodes } from '../quantize/qdq-select.js';
import type { QuantizationFormat } from '../targets/types.js';
import type { Pass, PassReport } from './types.js';
import { upgradeOpset } from './upgrade-opset.js';

/**
 * Static int8 quantisation in QDQ form (see compiler/quantize/README.md): weights of Conv/MatMul/Gemm become int8
 * initializers (per output channel when the format says so), biases int32, and calibrated activations at the
 * boundaries of quantised nodes get QuantizeLinear → DequantizeLinear pairs that ONNX Runtime fuses into integer
 * kernels. The model stays a standard ONNX model both onnxruntime-node and onnxruntime-web load.
 */
const log = logger('compiler.quantize-static');

export interface StaticQuantizeOptions {
  /** Activation ranges by tensor name, from `collectRanges`. */
  readonly ranges: ReadonlyMap<string, TensorRange>;
  readonly format: QuantizationFormat;
  /** Node names kept float. */
  readonly exclude?: ReadonlySet<string>;
  /** Only these op types are quantised (keys of QDQ_OPS). */
  readonly opTypes?: readonly string[];
  /** Node names or op types that must be quantised: one that cannot be is QUANTIZATION_FAILED, not a warning. */
  readonly require?: readonly string[];
  /** Activations as [-absmax, absmax] with zero point 0 (TensorRT's convention); default asymmetric, ORT's. */
  readonly symmetricActivations?: boolean;
}

/** DequantizeLinear's `axis` (per-channel weights) arrived in opset 13; QuantizeLinear itself in opset 10. */
const PER_CHANNEL_OPSET = 13;
const QDQ_OPSET = 10;

function label(node: NodeProto): string {
  return node.name === '' ? `${node.opType}(${node.output.join(', ')})` : node.name;
}

/** Quantisable nodes inside If/Loop/Scan bodies: left float, and said so. */
function reportSubgraphNodes(graph: ReturnType<typeof mainGraph>, report: PassReport, opTypes?: ReadonlySet<string>) {
  const found: NodeProto[] = [];
  for (const holder of graph.node) {
    for (const sub of nodeSubgraphs(holder)) {
      for (const g of graphAndSubgraphs(sub)) {
        for (const node of g.node) {
          if (qdqOp(node) === undefined || (opTypes !== undefined && !opTypes.has(node.opType))) continue;
          report.excludedNodes.push({
            node: label(node),
            op: node.opType,
            reason: `inside a subgraph of ${holder.opType} "${label(holder)}": only the main graph is quantised`,
          });
          found.push(node);
        }
      }
    }
  }
  return found;
}

async function ensureOpset(...[model, context]: Parameters<Pass<StaticQuantizeOptions>>): Promise<boolean> {
  const opset = opsetVersion(model.proto, '') ?? 0;
  if (opset >= PER_CHANNEL_OPSET) return true;
  try {
    await upgradeOpset(model, context, { to: PER_CHANNEL_OPSET });
    context.report.warnings.push(`default-domain opset upgraded from ${opset} to ${PER_CHANNEL_OPSET} for QDQ`);
    return true;
  } catch (error) {
    if (!isOutpostError(error, 'OPSET_UPGRADE_FAILED') || opset < QDQ_OPSET) {
      throw new OutpostError(
        'QUANTIZATION_FAILED',
        `${model.source} is opset ${opset}; QDQ needs ≥ ${QDQ_OPSET} and the upgrade failed: ${(error as Error).message}`,
        { cause: error, details: { opset } },
      );
    }
    context.report.warnings.push(`opset ${opset} kept (${(error as Error).message}); weights quantised per tensor`);
    return false;
  }
}

export const quantizeStatic: Pass<StaticQuantizeOptions> = async (model, context, options) => {
  const unknown = (options.opTypes ?? []).filter((op) => !(op in QDQ_OPS));
  if (unknown.length > 0) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `opTypes ${unknown.join(', ')} cannot be statically quantised; accepted: ${Object.keys(QDQ_OPS).join(', ')}`,
      { details: { unknown, accepted: Object.keys(QDQ_OPS) } },
    );
  }
  const opTypes = options.opTypes === undefined ? undefined : new Set(options.opTypes);
  const required = new Set(options.require ?? []);
  const isRequired = (node: NodeProto): boolean => required.has(node.name) || required.has(node.opType);
  const graph = mainGraph(model.proto);
  for (const node of reportSubgraphNodes(graph, context.report, opTypes)) {
    if (isRequired(node)) {
      throw new OutpostError('QUANTIZATION_FAILED', `node "${label(node)}" (${node.opType}) is inside a subgraph`, {
        details: { node: label(node), op: node.opType },
      });
    }
  }
  const perChannelOk = await ensureOpset(model, context, options);
  const prepared = await prepareForQuantization(model, graph);
  const inferred = await inferValueTypes(model, nodeOutputs(graph), context.workDir);
  const dtypes = new Map<string, DType | undefined>([...valueTypes(graph)].map(([n, t]) => [n, t.dtype]));
  for (const [name, t] of inferred) dtypes.set(name, t.dtype);
  const constants = constantSources(graph);
  const symmetricActivations = options.symmetricActivations ?? false;
  const selection = await selectNodes({
    model,
    graph,
    dtypes,
    ranges: options.ranges,
    constants,
    opset: opsetVersion(model.proto, '') ?? 0,
    exclude: options.exclude ?? new Set(),
    opTypes,
    symmetricActivations,
  });
  for (const node of selection.excluded) {
    context.report.excludedNodes.push({ node: label(node), op: node.opType, reason: 'excluded by option' });
  }
  for (const { node, reason } of selection.skipped) {
    if (isRequired(node)) {
      throw new OutpostError(
        'QUANTIZATION_FAILED',
        `cannot quantise node "${label(node)}" (${node.opType}): ${reason}`,
        {
          details: { node: label(node), op: node.opType, reason },
        },
      );
    }
    context.report.warnings.push(`${node.opType} "${label(node)}" left float: ${reason}`);
    context.report.excludedNodes.push({ node: label(node), op: node.opType, reason });
  }
  if (selection.chosen.size === 0) {
    context.report.warnings.push('static quantisation found nothing to quantise');
    return model;
  }
  const { format } = options;
  const perChannel = format.perChannel && perChannelOk;
  const emitted = await emitQdq({
    model,
    graph,
    chosen: selection.chosen,
    ranges: options.ranges,
    constants,
    activations: format.activations,
    symmetricActivations,
    weights: format.weights,
    // [quant_utils / base_quantizer.is_weight_symmetric] signed weights are symmetric; unsigned per-channel weights
    // too, because ORT's per-channel QLinearConv needs one zero point for every channel.
    weightSymmetric: format.weights === 'int8' || perChannel,
    reduceRange: format.reduceRange,
    perChannel,
  });
  context.report.warnings.push(...emitted.warnings);
  log.info(
    {
      source: model.source,
      nodes: selection.chosen.size,
      tensors: emitted.tensors,
      skipped: selection.skipped.length,
      ...prepared,
      perChannel,
    },
    'static QDQ quantisation',
  );
  return model;
};
