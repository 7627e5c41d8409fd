import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, OperatorSetIdProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import { OutpostError, isOutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import {
  NameGenerator,
  consumers,
  getAttribute,
  mainGraph,
  makeAttribute,
  opsetVersion,
  sortTopologically,
} from '../onnx/index.js';
import { addInitializer, constantSources, dropIfUnused, readFloat32 } from '../quantize/constants.js';
import type { QuantType } from '../quantize/params.js';
import { quantizeWeight } from '../quantize/weights.js';
import type { QuantizationFormat } from '../targets/types.js';
import type { Pass, PassContext } from './types.js';
import { upgradeOpset } from './upgrade-opset.js';

/**
 * Dynamic int8 quantisation of MatMul and Gemm weights, ONNX Runtime's `quantize_dynamic` (the guide: "it is
 * recommended to use dynamic quantization for RNNs and transformer-based models"): weights become int8 constants
 * and activations are quantised at run time, per call, from their own min and max. No calibration data.
 *
 * Two spellings of the same computation:
 * - 'integer' (default), standard ONNX: DynamicQuantizeLinear(A) → MatMulInteger(A_q, W_q, A_zp) → Cast(float) →
 *   Mul(A_scale × W_scale) [→ Add(bias)]. ORT fuses this chain into its DynamicQuantizeMatMul kernel at level
 *   'extended' (MatMulIntegerToFloatFusion, DynamicQuantizeMatMulFusion), so native speed is the contrib op's.
 * - 'contrib': com.microsoft DynamicQuantizeMatMul(A, W_q, W_scale, W_zp, bias) directly (ORT contrib-op schema).
 *
 * DynamicQuantizeLinear yields uint8 only ([Operators.md, DynamicQuantizeLinear] "Right now only uint8 is
 * supported"), so activations are uint8 whatever the format says; weights follow the format (int8 symmetric, or
 * uint8), with reduce range where the target needs it.
 */
const log = logger('compiler.quantize-dynamic');

export interface DynamicQuantizeOptions {
  readonly format: QuantizationFormat;
  /** Node names kept float. */
  readonly exclude?: ReadonlySet<string>;
  /** Per-column weight scales; default: the format's `perChannel`. */
  readonly perChannel?: boolean;
  readonly form?: 'integer' | 'contrib';
  /** Which ops; default both. */
  readonly opTypes?: readonly ('MatMul' | 'Gemm')[];
}

/** DynamicQuantizeLinear arrived in opset 11. */
const DYNAMIC_OPSET = 11;
const MS_DOMAIN = 'com.microsoft';

function label(node: NodeProto): string {
  return node.name === '' ? `${node.opType}(${node.output.join(', ')})` : node.name;
}

function make(opType: string, input: string[], output: string[], domain?: string): NodeProto {
  const node = create(NodeProtoSchema, { opType, input, output });
  if (domain !== undefined) node.domain = domain;
  return node;
}

/** B as [K, N] whatever the node's layout: Gemm with transB = 1 stores [N, K]. */
function asKN(data: Float32Array, dims: number[], transposed: boolean): { data: Float32Array; dims: number[] } {
  if (!transposed) return { data, dims };
  const [n, k] = dims as [number, number];
  const out = new Float32Array(data.length);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) out[j * n + i] = data[i * k + j] as number;
  return { data: out, dims: [k, n] };
}

interface Plan {
  readonly node: NodeProto;
  readonly weight: { data: Float32Array; dims: number[] };
  /** Gemm: beta × C, as a float vector of N. */
  readonly bias: Float32Array | undefined;
  /** Gemm: alpha, folded into the scale. */
  readonly alpha: number;
}

async function plan(
  model: Parameters<Pass<DynamicQuantizeOptions>>[0],
  node: NodeProto,
  constants: ReturnType<typeof constantSources>,
): Promise<Plan | string> {
  const w = await readFloat32(model, constants.get(node.input[1] ?? ''));
  if (constants.has(node.input[0] ?? '')) return 'input A is a constant';
  if (w === undefined) return `weight "${node.input[1] ?? ''}" is not a constant float32 initializer`;
  if (w.dims.length !== 2) return `weight "${node.input[1] ?? ''}" has rank ${w.dims.length}; only 2-D weights`;
  if (node.opType === 'MatMul') return { node, weight: w, bias: undefined, alpha: 1 };
  if (Number(getAttribute(node, 'transA')?.i ?? 0n) !== 0) return 'transA = 1';
  const weight = asKN(w.data, w.dims, Number(getAttribute(node, 'transB')?.i ?? 0n) === 1);
  const alpha = getAttribute(node, 'alpha')?.f ?? 1;
  const beta = getAttribute(node, 'beta')?.f ?? 1;
  const c = node.input[2];
  if (c === undefined || c === '') return { node, weight, bias: undefined, alpha };
  const bias = await readFloat32(model, constants.get(c));
  const n = weight.dims[1] as number;
  if (
    bias === undefined ||
    bias.data.length !== n ||
    bias.dims.length > 2 ||
    (bias.dims.length === 2 && bias.dims[0] !== 1)
  ) {
    return `bias "${c}" is not a constant float32 vector of ${n}`;
  }
  return { node, weight, bias: Float32Array.from(bias.data, (v) => Math.fround(v * beta)), alpha };
}

async function ensureOpset(model: Parameters<Pass<DynamicQuantizeOptions>>[0], context: PassContext): Promise<void> {
  const opset = opsetVersion(model.proto, '') ?? 0;
  if (opset >= DYNAMIC_OPSET) return;
  try {
    await upgradeOpset(model, context, { to: 13 });
    context.report.warnings.push(`default-domain opset upgraded from ${opset} to 13 for DynamicQuantizeLinear`);
  } catch (error) {
    if (!isOutpostError(error, 'OPSET_UPGRADE_FAILED')) throw error;
    throw new OutpostError(
      'QUANTIZATION_FAILED',
      `${model.source} is opset ${opset}; DynamicQuantizeLinear needs ≥ ${DYNAMIC_OPSET} and the upgrade failed: ${error.message} (form 'contrib' needs no upgrade)`,
      { cause: error, details: { opset } },
    );
  }
}

function emit(
  graph: GraphProto,
  names: NameGenerator,
  p: Plan,
  options: Required<Pick<DynamicQuantizeOptions, 'form' | 'perChannel'>> & { weights: QuantType; reduceRange: boolean },
): NodeProto[] {
  const { node, weight } = p;
  const stem = label(node);
  const x = node.input[0] ?? '';
  const y = node.output[0] ?? '';
  const q = quantizeWeight(weight.data, weight.dims, {
    type: options.weights,
    symmetric: options.weights === 'int8',
    reduceRange: options.reduceRange,
    axis: options.perChannel ? 1 : undefined,
  });
  const scales = p.alpha === 1 ? q.scales : Float32Array.from(q.scales, (s) => Math.fround(s * p.alpha));
  const shape = options.perChannel ? [scales.length] : [];
  const wq = addInitializer(graph, names.value(`${node.input[1] ?? stem}_q`), q.data, weight.dims, options.weights);
  const ws = addInitializer(graph, names.value(`${node.input[1] ?? stem}_scale`), scales, shape);
  const allZero = q.zeroPoints.every((z) => z === 0);
  const wz = allZero
    ? ''
    : addInitializer(graph, names.value(`${node.input[1] ?? stem}_zp`), q.zeroPoints, shape, options.weights);
  const bias = p.bias === undefined ? '' : addInitializer(graph, names.value(`${stem}_bias`), p.bias, [p.bias.length]);
  if (options.form === 'contrib') {
    const inputs = [x, wq, ws, wz, bias];
    while (inputs[inputs.length - 1] === '') inputs.pop();
    const fused = make('DynamicQuantizeMatMul', inputs, [y], MS_DOMAIN);
    fused.name = names.node(`${stem}_dynamic`);
    return [fused];
  }
  const [aq, as, az, acc, accf, s, prod] = ['a_q', 'a_scale', 'a_zp', 'int32', 'float', 'scale', 'scaled'].map((v) =>
    names.value(`${stem}_${v}`),
  ) as [string, string, string, string, string, string, string];
  const cast = make('Cast', [acc], [accf]);
  cast.attribute.push(makeAttribute('to', 1)); // TensorProto.FLOAT
  const nodes = [
    make('DynamicQuantizeLinear', [x], [aq, as, az]),
    make('MatMulInteger', wz === '' ? [aq, wq, az] : [aq, wq, az, wz], [acc]),
    cast,
    make('Mul', [as, ws], [s]),
    make('Mul', [accf, s], [bias === '' ? y : prod]),
  ];
  if (bias !== '') nodes.push(make('Add', [prod, bias], [y]));
  return nodes;
}

export const quantizeDynamic: Pass<DynamicQuantizeOptions> = async (model, context, options) => {
  const form = options.form ?? 'integer';
  const opTypes = new Set<string>(options.opTypes ?? ['MatMul', 'Gemm']);
  const exclude = options.exclude ?? new Set<string>();
  const graph = mainGraph(model.proto);
  for (const holder of graph.node) {
    for (const attribute of holder.attribute) {
      for (const sub of [attribute.g, ...attribute.graphs]) {
        for (const n of sub?.node ?? []) {
          if (!opTypes.has(n.opType)) continue;
          context.report.excludedNodes.push({
            node: label(n),
            op: n.opType,
            reason: `inside a subgraph of ${holder.opType} "${label(holder)}": only the main graph is quantised`,
          });
        }
      }
    }
  }
  if (form === 'integer') await ensureOpset(model, context);
  const constants = constantSources(graph);
  const plans: Plan[] = [];
  for (const node of graph.node) {
    if ((node.domain !== '' && node.domain !== 'ai.onnx') || !opTypes.has(node.opType)) continue;
    if (exclude.has(node.name)) {
      context.report.excludedNodes.push({ node: label(node), op: node.opType, reason: 'excluded by option' });
      continue;
    }
    const outcome = await plan(model, node, constants);
    if (typeof outcome === 'string') {
      context.report.warnings.push(`${node.opType} "${label(node)}" left float: ${outcome}`);
      context.report.excludedNodes.push({ node: label(node), op: node.opType, reason: outcome });
    } else {
      plans.push(outcome);
    }
  }
  const names = new NameGenerator(model.proto);
  const settings = {
    form,
    perChannel: options.perChannel ?? options.format.perChannel,
    weights: options.format.weights,
    reduceRange: options.format.reduceRange,
  };
  for (const p of plans) {
    const nodes = emit(graph, names, p, settings);
    graph.node.splice(graph.node.indexOf(p.node), 1, ...nodes);
  }
  const reads = consumers(graph);
  const outputs = new Set(graph.output.map((o) => o.name));
  for (const source of constants.values())
    dropIfUnused(graph, source, reads.has(source.name) || outputs.has(source.name));
  if (form === 'contrib' && plans.length > 0 && opsetVersion(model.proto, MS_DOMAIN) === undefined) {
    model.proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain: MS_DOMAIN, version: 1n }));
  }
  sortTopologically(graph);
  log.info(
    { source: model.source, nodes: plans.length, form, perChannel: settings.perChannel },
    'dynamic quantisation',
  );
  return model;
};
