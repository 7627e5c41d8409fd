import type { GraphProto, NodeProto } from 'onnx-buf';
import { OutpostError } from '../../runtime/errors.js';
import { nodeSubgraphs } from './walk.js';

/**
 * Data-flow queries over an onnx-buf GraphProto, with no IR of our own: the proto is the graph. Subgraphs matter
 * here: [onnx IR.md, "Names Within a Graph"] "A node input in a nested subgraph MAY refer to names introduced in outer
 * graphs", so a node holding a subgraph (If, Loop, Scan) implicitly consumes every outer value its subgraphs read.
 */

/** Names a graph defines itself: inputs, initializers (dense and sparse) and node outputs. */
export function definedNames(graph: GraphProto): Set<string> {
  const names = new Set<string>();
  for (const input of graph.input) names.add(input.name);
  for (const tensor of graph.initializer) names.add(tensor.name);
  for (const sparse of graph.sparseInitializer) if (sparse.values !== undefined) names.add(sparse.values.name);
  for (const node of graph.node) for (const output of node.output) if (output !== '') names.add(output);
  return names;
}

/**
 * Names a subgraph reads from enclosing scopes: used by its nodes, its outputs or its own subgraphs, and not
 * defined inside it. Computed afresh on each call (graphs are edited in place, so a cache would go stale).
 */
export function outerScopeNames(subgraph: GraphProto): Set<string> {
  const defined = definedNames(subgraph);
  const names = new Set<string>();
  const use = (name: string): void => {
    if (name !== '' && !defined.has(name)) names.add(name);
  };
  for (const node of subgraph.node) {
    for (const input of node.input) use(input);
    for (const sub of nodeSubgraphs(node)) for (const name of outerScopeNames(sub)) use(name);
  }
  for (const output of subgraph.output) use(output.name);
  return names;
}

/** Everything a node reads: its explicit inputs (optional '' skipped) and its subgraphs' outer-scope names. */
export function nodeReads(node: NodeProto): string[] {
  const reads = new Set<string>();
  for (const input of node.input) if (input !== '') reads.add(input);
  for (const sub of nodeSubgraphs(node)) for (const name of outerScopeNames(sub)) reads.add(name);
  return [...reads];
}

/** Value name → the node of this graph that produces it. */
export function producers(graph: GraphProto): Map<string, NodeProto> {
  const map = new Map<string, NodeProto>();
  for (const node of graph.node) for (const output of node.output) if (output !== '') map.set(output, node);
  return map;
}

/** Value name → nodes of this graph that read it, explicitly or through a subgraph, each node once, in graph order. */
export function consumers(graph: GraphProto): Map<string, NodeProto[]> {
  const map = new Map<string, NodeProto[]>();
  for (const node of graph.node) {
    for (const name of nodeReads(node)) {
      const list = map.get(name);
      if (list === undefined) map.set(name, [node]);
      else list.push(node);
    }
  }
  return map;
}

function describe(node: NodeProto): string {
  return node.name === '' ? `${node.opType}(${node.output.join(', ')})` : `${node.name} (${node.opType})`;
}

/**
 * The graph's nodes in an order where every node follows the producers of what it reads, including values read
 * through subgraphs. Stable: an already sorted graph comes back in its own order, and otherwise each node moves only
 * behind what it needs. A cycle is MODEL_INVALID naming the nodes on it.
 */
export function topologicalOrder(graph: GraphProto): NodeProto[] {
  const nodes = graph.node;
  const producerIndex = new Map<string, number>();
  nodes.forEach((node, i) => {
    for (const output of node.output) if (output !== '') producerIndex.set(output, i);
  });
  const depsOf = (i: number): number[] => {
    const deps: number[] = [];
    for (const name of nodeReads(nodes[i] as NodeProto)) {
      const p = producerIndex.get(name);
      if (p !== undefined && p !== i) deps.push(p);
    }
    return deps;
  };
  const VISITING = 1;
  const DONE = 2;
  const state = new Uint8Array(nodes.length);
  const order: NodeProto[] = [];
  for (let root = 0; root < nodes.length; root++) {
    if (state[root] === DONE) continue;
    // Iterative depth-first search, so deep chains (long unrolled graphs) cannot overflow the call stack.
    const stack: { index: number; deps: number[]; next: number }[] = [{ index: root, deps: depsOf(root), next: 0 }];
    state[root] = VISITING;
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as (typeof stack)[number];
      if (top.next < top.deps.length) {
        const dep = top.deps[top.next++] as number;
        if (state[dep] === DONE) continue;
        if (state[dep] === VISITING) {
          const from = stack.findIndex((frame) => frame.index === dep);
          const cycle = stack.slice(from).map((frame) => describe(nodes[frame.index] as NodeProto));
          throw new OutpostError('MODEL_INVALID', `graph "${graph.name}" has a cycle: ${cycle.join(' → ')}`, {
            details: { graph: graph.name, cycle },
          });
        }
        state[dep] = VISITING;
        stack.push({ index: dep, deps: depsOf(dep), next: 0 });
      } else {
        state[top.index] = DONE;
        order.push(nodes[top.index] as NodeProto);
        stack.pop();
      }
    }
  }
  return order;
}

/** Reorders `graph.node` topologically in place ([IR.md] "The list of nodes … MUST be ordered topologically"). */
export function sortTopologically(graph: GraphProto): void {
  graph.node = topologicalOrder(graph);
}
