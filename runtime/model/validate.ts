import { OutpostError } from '../errors.js';
import type { TensorSpec } from '../artifact/manifest.js';
import { dataMatchesDType, type DType } from '../tensor/dtype.js';
import type { TensorLike } from '../tensor/tensor.js';

/** One input as the validator checks it: fixed sizes as numbers, symbols as indexes into a per-call scratch. */
interface CompiledInput {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly (number | string)[];
  /** Per axis: expected size (>= 0), or -(1 + symbol index) for an unbound symbol. */
  readonly axes: Int32Array;
}

/** Binds symbolic dims: a bound symbol becomes a fixed size everywhere it appears. */
export function bindShape(shape: readonly (number | string)[], bindings: Readonly<Record<string, number>>) {
  return shape.map((d) => (typeof d === 'string' && bindings[d] !== undefined ? bindings[d] : d));
}

export function formatShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Checks feeds against the model's inputs before they reach ONNX Runtime, so a wrong call gets an error naming the
 * input, the expected and the actual instead of a native stack. Compiled once per model; a check allocates nothing
 * unless it fails.
 */
export class InputValidator {
  private readonly inputs: readonly CompiledInput[];
  private readonly symbols: readonly string[];
  /** Sizes seen for each unbound symbol during the current call; -1 = not yet seen. Reused across calls. */
  private readonly seen: Int32Array;

  constructor(specs: readonly TensorSpec[], bindings: Readonly<Record<string, number>> = {}) {
    const symbols: string[] = [];
    this.inputs = specs.map((spec) => {
      const shape = bindShape(spec.shape, bindings);
      const axes = Int32Array.from(shape, (d) => {
        if (typeof d === 'number') return d;
        let index = symbols.indexOf(d);
        if (index < 0) index = symbols.push(d) - 1;
        return -(1 + index);
      });
      return { name: spec.name, dtype: spec.dtype, shape, axes };
    });
    this.symbols = symbols;
    this.seen = new Int32Array(symbols.length);
  }

  /** Throws the first problem found; returns normally when every input is present and well-formed. */
  check(feeds: Readonly<Record<string, TensorLike | undefined>>): void {
    let given = 0;
    for (const key in feeds) if (feeds[key] !== undefined) given++;
    if (given > this.inputs.length) this.unknownName(feeds);
    this.seen.fill(-1);
    for (const input of this.inputs) {
      const feed = feeds[input.name];
      if (feed === undefined) this.missing(input, feeds);
      if ((feed.type !== undefined && feed.type !== input.dtype) || !dataMatchesDType(feed.data, input.dtype)) {
        this.wrongDtype(input, feed);
      }
      const dims = feed.dims;
      const axes = input.axes;
      if (dims.length !== axes.length)
        this.wrongShape(input, feed, `rank ${dims.length}, expected rank ${axes.length}`);
      let count = 1;
      for (let axis = 0; axis < axes.length; axis++) {
        const want = axes[axis] as number;
        const got = dims[axis] as number;
        if (!Number.isInteger(got) || got < 0) this.wrongShape(input, feed, `dimension ${axis} is ${got}`);
        if (want >= 0) {
          if (got !== want) this.wrongShape(input, feed, `dimension ${axis} is ${got}, expected ${want}`);
        } else {
          const symbol = -want - 1;
          const previous = this.seen[symbol] as number;
          if (previous < 0) this.seen[symbol] = got;
          else if (previous !== got) {
            this.wrongShape(
              input,
              feed,
              `"${this.symbols[symbol] ?? '?'}" is ${got} here but ${previous} in another input`,
            );
          }
        }
        count *= got;
      }
      if (feed.data.length !== count) {
        this.wrongShape(input, feed, `data has ${feed.data.length} elements, dims ${formatShape(dims)} need ${count}`);
      }
    }
  }

  private missing(input: CompiledInput, feeds: Readonly<Record<string, unknown>>): never {
    // A missing input beside an unknown one is usually a misspelt name: report the unknown name.
    const names = new Set(this.inputs.map((i) => i.name));
    if (Object.keys(feeds).some((k) => !names.has(k))) this.unknownName(feeds);
    throw new OutpostError(
      'INPUT_MISSING',
      `input "${input.name}" is missing (${input.dtype} ${formatShape(input.shape)})`,
      {
        details: { input: input.name, given: Object.keys(feeds), expected: this.inputs.map((i) => i.name) },
      },
    );
  }

  private unknownName(feeds: Readonly<Record<string, unknown>>): never {
    const names = new Set(this.inputs.map((i) => i.name));
    const unknown = Object.keys(feeds).filter((k) => !names.has(k));
    throw new OutpostError(
      'INPUT_NAME_UNKNOWN',
      `unknown input ${unknown.map((n) => `"${n}"`).join(', ')}; the model's inputs are ${[...names].map((n) => `"${n}"`).join(', ')}`,
      { details: { unknown, expected: [...names] } },
    );
  }

  private wrongDtype(input: CompiledInput, feed: TensorLike): never {
    const actual = feed.type ?? feed.data.constructor.name;
    throw new OutpostError('INPUT_DTYPE_MISMATCH', `input "${input.name}" must be ${input.dtype}, got ${actual}`, {
      details: { input: input.name, expected: input.dtype, actual },
    });
  }

  private wrongShape(input: CompiledInput, feed: TensorLike, why: string): never {
    throw new OutpostError(
      'INPUT_SHAPE_MISMATCH',
      `input "${input.name}" has shape ${formatShape(feed.dims)}, expected ${formatShape(input.shape)}: ${why}`,
      { details: { input: input.name, expected: input.shape, actual: [...feed.dims] } },
    );
  }
}

/**
 * Symbol bindings implied by full input shapes (`--input-shape name=1,3,224,224`): each symbolic axis of the named
 * input takes the given size; a fixed axis must already have it.
 */
export function bindingsFromShapes(
  specs: readonly TensorSpec[],
  shapes: Readonly<Record<string, readonly number[]>>,
): Record<string, number> {
  const bindings: Record<string, number> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const spec = specs.find((s) => s.name === name);
    if (spec === undefined) {
      throw new OutpostError(
        'INPUT_NAME_UNKNOWN',
        `--input-shape names "${name}", which is not an input; inputs: ${specs.map((s) => s.name).join(', ')}`,
        {
          details: { unknown: name, expected: specs.map((s) => s.name) },
        },
      );
    }
    if (shape.length !== spec.shape.length) {
      throw new OutpostError(
        'INPUT_SHAPE_MISMATCH',
        `--input-shape ${name}=${shape.join(',')} has rank ${shape.length}; "${name}" is ${formatShape(spec.shape)}`,
        {
          details: { input: name, expected: spec.shape, actual: [...shape] },
        },
      );
    }
    spec.shape.forEach((dim, axis) => {
      const size = shape[axis] as number;
      if (typeof dim === 'number') {
        if (dim !== size) {
          throw new OutpostError(
            'INPUT_SHAPE_MISMATCH',
            `--input-shape ${name}: dimension ${axis} is fixed at ${dim}, got ${size}`,
            {
              details: { input: name, expected: spec.shape, actual: [...shape] },
            },
          );
        }
      } else if (bindings[dim] !== undefined && bindings[dim] !== size) {
        throw new OutpostError('INPUT_SHAPE_MISMATCH', `"${dim}" bound to both ${bindings[dim]} and ${size}`, {
          details: { symbol: dim },
        });
      } else bindings[dim] = size;
    });
  }
  return bindings;
}

/** Symbols that mean "batch" in the models people export: a sensible default of 1 when nobody binds them. */
export const BATCH_SYMBOLS: ReadonlySet<string> = new Set([
  'batch',
  'batch_size',
  'batchsize',
  'bs',
  'n',
  'N',
  'B',
  'b',
]);

/**
 * A concrete shape for synthetic inputs: bound symbols take their binding, batch-like symbols 1; any other
 * symbol has no sensible default and is an error that names it.
 */
export function concreteShape(spec: TensorSpec, bindings: Readonly<Record<string, number>> = {}): number[] {
  return spec.shape.map((dim) => {
    if (typeof dim === 'number') return dim;
    const bound = bindings[dim];
    if (bound !== undefined) return bound;
    if (BATCH_SYMBOLS.has(dim)) return 1;
    throw new OutpostError(
      'SYMBOLIC_DIM_UNBOUND',
      `input "${spec.name}" ${formatShape(spec.shape)}: dimension "${dim}" has no default; bind it with --input-shape ${spec.name}=${spec.shape.map((d) => (typeof d === 'number' ? d : '<n>')).join(',')}`,
      { details: { input: spec.name, symbol: dim, shape: spec.shape } },
    );
  });
}
