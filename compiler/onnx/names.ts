import { isMessage } from '@bufbuild/protobuf';
import { ModelProtoSchema, type GraphProto, type ModelProto } from 'onnx-buf';
import { graphAndSubgraphs, modelGraphs } from './walk.js';

/**
 * Fresh value and node names. [onnx IR.md, "Names Within a Graph"] values and nodes are separate namespaces, and "a
 * node output name MUST be distinct from the names from the outer scopes that are visible in the nested subgraph",
 * so names are collected across the graph and all its subgraphs, and one generator serves the whole tree.
 */
export class NameGenerator {
  private readonly values = new Set<string>();
  private readonly nodes = new Set<string>();
  /** Next suffix to try per base, so generating many names from one base stays linear. */
  private readonly next = new Map<string, number>();

  constructor(root?: ModelProto | GraphProto) {
    if (root === undefined) return;
    const graphs = isMessage(root, ModelProtoSchema) ? modelGraphs(root) : graphAndSubgraphs(root);
    for (const graph of graphs) this.collect(graph);
  }

  private collect(graph: GraphProto): void {
    for (const list of [graph.input, graph.output, graph.valueInfo]) for (const v of list) this.values.add(v.name);
    for (const tensor of graph.initializer) this.values.add(tensor.name);
    for (const sparse of graph.sparseInitializer) if (sparse.values !== undefined) this.values.add(sparse.values.name);
    for (const node of graph.node) {
      if (node.name !== '') this.nodes.add(node.name);
      for (const name of node.input) if (name !== '') this.values.add(name);
      for (const name of node.output) if (name !== '') this.values.add(name);
    }
  }

  private fresh(kind: 'value' | 'node', base: string): string {
    const taken = kind === 'value' ? this.values : this.nodes;
    const stem = base === '' ? kind : base;
    let name = stem;
    if (taken.has(name)) {
      const key = `${kind}:${stem}`;
      let n = this.next.get(key) ?? 1;
      while (taken.has(`${stem}_${n}`)) n += 1;
      name = `${stem}_${n}`;
      this.next.set(key, n + 1);
    }
    taken.add(name);
    return name;
  }

  /** A value name not used anywhere in the tree: `base` itself when free, else `base_1`, `base_2`, … (reserved). */
  value(base: string): string {
    return this.fresh('value', base);
  }

  /** A node name not used anywhere in the tree (reserved). */
  node(base: string): string {
    return this.fresh('node', base);
  }

  /** Marks names as taken (for names chosen elsewhere). */
  reserveValue(name: string): void {
    this.values.add(name);
  }

  reserveNode(name: string): void {
    this.nodes.add(name);
  }

  hasValue(name: string): boolean {
    return this.values.has(name);
  }
}
