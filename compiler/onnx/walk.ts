import type { FunctionProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto } from 'onnx-buf';

/**
 * Where tensors and graphs hide in a model. A subgraph is an attribute value of a node (If's then/else_branch,
 * Loop's and Scan's body: onnx IR.md, "Attributes"), so every walk recurses through node attributes, and model-local
 * functions and training graphs hold nodes too.
 */
export type TensorKind = 'initializer' | 'attribute' | 'sparse';

export interface TensorSite {
  tensor: TensorProto;
  /** initializer: graph.initializer; attribute: a node attribute's `t`/`tensors` (Constant's value); sparse: a sparse tensor's values or indices. */
  kind: TensorKind;
  /** The graph whose initializer or node holds it (undefined inside a function body). */
  graph: GraphProto | undefined;
  /** The node whose attribute holds it (attribute and sparse-attribute tensors). */
  node: NodeProto | undefined;
}

/** The graphs held directly by a node's attributes (not their nested subgraphs). */
export function* nodeSubgraphs(node: NodeProto): Generator<GraphProto> {
  for (const attribute of node.attribute) {
    if (attribute.g !== undefined) yield attribute.g;
    yield* attribute.graphs;
  }
}

/** `graph` and every graph nested in its nodes' attributes, outermost first. */
export function* graphAndSubgraphs(graph: GraphProto): Generator<GraphProto> {
  yield graph;
  for (const node of graph.node) for (const sub of nodeSubgraphs(node)) yield* graphAndSubgraphs(sub);
}

/** Every graph of the model: the main graph, training graphs, and all subgraphs, including those in functions. */
export function* modelGraphs(model: ModelProto): Generator<GraphProto> {
  if (model.graph !== undefined) yield* graphAndSubgraphs(model.graph);
  for (const info of model.trainingInfo) {
    if (info.initialization !== undefined) yield* graphAndSubgraphs(info.initialization);
    if (info.algorithm !== undefined) yield* graphAndSubgraphs(info.algorithm);
  }
  for (const fn of model.functions) {
    for (const node of fn.node) for (const sub of nodeSubgraphs(node)) yield* graphAndSubgraphs(sub);
  }
}

function* sparseParts(sparse: SparseTensorProto, graph: GraphProto | undefined, node: NodeProto | undefined) {
  if (sparse.values !== undefined) yield { tensor: sparse.values, kind: 'sparse' as const, graph, node };
  if (sparse.indices !== undefined) yield { tensor: sparse.indices, kind: 'sparse' as const, graph, node };
}

function* nodeTensors(nodes: readonly NodeProto[], graph: GraphProto | undefined): Generator<TensorSite> {
  for (const node of nodes) {
    for (const attribute of node.attribute) {
      if (attribute.t !== undefined) yield { tensor: attribute.t, kind: 'attribute', graph, node };
      for (const tensor of attribute.tensors) yield { tensor, kind: 'attribute', graph, node };
      if (attribute.sparseTensor !== undefined) yield* sparseParts(attribute.sparseTensor, graph, node);
      for (const sparse of attribute.sparseTensors) yield* sparseParts(sparse, graph, node);
    }
  }
}

/** Initializers and attribute tensors of one graph (not its subgraphs). */
export function* graphTensors(graph: GraphProto): Generator<TensorSite> {
  for (const tensor of graph.initializer) yield { tensor, kind: 'initializer', graph, node: undefined };
  for (const sparse of graph.sparseInitializer) yield* sparseParts(sparse, graph, undefined);
  yield* nodeTensors(graph.node, graph);
}

function* functionTensors(fn: FunctionProto): Generator<TensorSite> {
  yield* nodeTensors(fn.node, undefined);
}

/** Every tensor stored in the model, in every graph, subgraph and function (onnx external_data_helper's set, plus sparse parts). */
export function* modelTensors(model: ModelProto): Generator<TensorSite> {
  for (const graph of modelGraphs(model)) yield* graphTensors(graph);
  for (const fn of model.functions) yield* functionTensors(fn);
}
