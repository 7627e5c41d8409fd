import type { GraphProto, NodeProto } from 'onnx-buf';
import { OutpostError } from '../../runtime/errors.js';
import { consumers, definedNames, producers } from './graph.js';
import { nodeSubgraphs } from './walk.js';

/**
 * In-place edits of a GraphProto that keep it well formed: nodes go in at a chosen place, and removing a node
 * rewires its consumers (in subgraphs too) to a replacement value instead of leaving dangling names.
 */
export type InsertPosition = { before: NodeProto } | { after: NodeProto } | { at: number };

function indexOf(graph: GraphProto, node: NodeProto): number {
  const index = graph.node.indexOf(node);
  if (index < 0) {
    throw new OutpostError('INVALID_ARGUMENT', `node ${node.name || node.opType} is not in graph "${graph.name}"`, {
      details: { graph: graph.name, node: node.name, opType: node.opType },
    });
  }
  return index;
}

/** Inserts nodes, in the given order, before or after an anchor node (or at an index). */
export function insertNodes(graph: GraphProto, nodes: readonly NodeProto[], where: InsertPosition): void {
  let index: number;
  if ('at' in where) index = Math.max(0, Math.min(where.at, graph.node.length));
  else if ('before' in where) index = indexOf(graph, where.before);
  else index = indexOf(graph, where.after) + 1;
  graph.node.splice(index, 0, ...nodes);
}

/** Rewrites reads of `from` inside a subgraph that sees it from outer scope (stopping where a scope redefines it). */
function renameInSubgraph(graph: GraphProto, from: string, to: string): number {
  if (definedNames(graph).has(from)) return 0;
  let count = 0;
  for (const node of graph.node) count += renameInNode(node, from, to);
  // A subgraph's outputs bind positionally to its node's outputs, so renaming one that reads an outer value is safe.
  for (const output of graph.output) {
    if (output.name === from) {
      output.name = to;
      count += 1;
    }
  }
  return count;
}

function renameInNode(node: NodeProto, from: string, to: string): number {
  let count = 0;
  node.input.forEach((name, i) => {
    if (name === from) {
      node.input[i] = to;
      count += 1;
    }
  });
  for (const sub of nodeSubgraphs(node)) count += renameInSubgraph(sub, from, to);
  return count;
}

export interface ReplaceUsesOptions {
  /** Nodes whose inputs keep reading `from` (e.g. the node just inserted to transform it). */
  except?: readonly NodeProto[];
}

/**
 * Points every read of value `from` in this graph's nodes, and in their subgraphs, at `to`. The graph's own outputs
 * are its interface and are left alone (see `removeNodes` for outputs). Returns the number of rewritten uses.
 */
export function replaceUses(graph: GraphProto, from: string, to: string, options: ReplaceUsesOptions = {}): number {
  const except = new Set(options.except ?? []);
  let count = 0;
  for (const node of graph.node) if (!except.has(node)) count += renameInNode(node, from, to);
  return count;
}

export interface RemoveOptions {
  /** Output of a removed node → the value its consumers (and the graph output of that name) should read instead. */
  rewire?: Readonly<Record<string, string>>;
}

/**
 * Removes nodes. Each output of a removed node that is still read (by a remaining node, a subgraph or the graph's
 * outputs) must be rewired to a replacement, else nothing changes and INVALID_ARGUMENT lists the readers.
 *
 * A rewired graph output keeps its name, because callers bind to it: the replacement's producer is renamed to
 * produce it instead. That needs a producer in this graph; a graph input or initializer cannot be renamed, and then
 * the caller has to keep an Identity node.
 */
export function removeNodes(graph: GraphProto, nodes: readonly NodeProto[], options: RemoveOptions = {}): void {
  const removed = new Set(nodes);
  for (const node of nodes) indexOf(graph, node);
  const rewire = options.rewire ?? {};
  const readers = consumers(graph);
  const graphOutputs = new Set(graph.output.map((o) => o.name));
  const produced = producers(graph);
  const renames: { from: string; to: string; output: boolean }[] = [];
  for (const node of nodes) {
    for (const output of node.output) {
      if (output === '') continue;
      const users = (readers.get(output) ?? []).filter((n) => !removed.has(n));
      const isOutput = graphOutputs.has(output);
      const to = rewire[output];
      if (to === undefined) {
        if (users.length > 0 || isOutput) {
          const names = users.map((n) => n.name || n.opType);
          throw new OutpostError(
            'INVALID_ARGUMENT',
            `cannot remove ${node.name || node.opType}: its output "${output}" is read by ${isOutput ? 'the graph output' : ''}${isOutput && names.length > 0 ? ' and ' : ''}${names.join(', ')}; pass rewire: { "${output}": <replacement> }`,
            { details: { node: node.name, output, readers: names, graphOutput: isOutput } },
          );
        }
        continue;
      }
      if (isOutput) {
        const source = produced.get(to);
        if (source === undefined || removed.has(source) || graphOutputs.has(to)) {
          throw new OutpostError(
            'INVALID_ARGUMENT',
            `cannot rewire graph output "${output}" to "${to}": "${to}" is not produced by a remaining node of graph "${graph.name}" (a graph input, initializer or output keeps its name); keep an Identity node instead`,
            { details: { output, replacement: to } },
          );
        }
      }
      renames.push({ from: output, to, output: isOutput });
    }
  }
  graph.node = graph.node.filter((n) => !removed.has(n));
  const gone = new Set(nodes.flatMap((n) => n.output));
  graph.valueInfo = graph.valueInfo.filter((v) => !gone.has(v.name));
  for (const { from, to, output } of renames) {
    if (output) {
      // Keep the interface name: whatever produced and read `to` now produces and reads `from`.
      graph.valueInfo = graph.valueInfo.filter((v) => v.name !== to);
      for (const node of graph.node) {
        const i = node.output.indexOf(to);
        if (i >= 0) node.output[i] = from;
      }
      replaceUses(graph, to, from);
    } else {
      replaceUses(graph, from, to);
    }
  }
}

/**
 * Removes a pass-through node (Identity, a no-op Cast or Dropout, …): readers of its first output read its
 * `inputIndex`th input instead. Its other outputs must be unread.
 */
export function bypassNode(graph: GraphProto, node: NodeProto, inputIndex = 0): void {
  const input = node.input[inputIndex];
  const output = node.output[0];
  if (input === undefined || input === '' || output === undefined) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `node ${node.name || node.opType} has no input ${inputIndex} to bypass to`,
      {
        details: { node: node.name, inputIndex },
      },
    );
  }
  removeNodes(graph, [node], { rewire: { [output]: input } });
}
