import { seededRandom } from '../../../runtime/tensor/tensor.js';

/**
 * Seeded generators of hostile inference requests for the fuzz suite: random bytes, and mutations of valid JSON
 * and binary-extension requests (flipped and truncated bytes, a wrong Inference-Header-Content-Length, hostile
 * values put anywhere in the JSON: huge or negative sizes, deep nesting, wrong types, NaN shapes).
 */
export interface FuzzCase {
  /** The model the request is sent to (its seed's). */
  readonly model: string;
  readonly body: Buffer;
  /** The Inference-Header-Content-Length value, if the request carries one. */
  readonly headerLength?: string;
  readonly contentType: string;
  /** How the case was made, for the failure message. */
  readonly how: string;
}

/** A valid request to start mutating from. */
export interface Seed {
  readonly model: string;
  readonly header: unknown;
  readonly binary?: Buffer;
  readonly contentType?: string;
}

/** Values no well-formed request holds where the mutator puts them. */
const HOSTILE: readonly unknown[] = Object.freeze([
  null,
  true,
  false,
  0,
  -1,
  -0.5,
  1.5,
  2 ** 31,
  2 ** 32 + 1,
  Number.MAX_SAFE_INTEGER + 2,
  -(2 ** 53),
  1e300,
  '',
  'NaN',
  'Infinity',
  '-1',
  'FP32',
  'BYTES',
  '__proto__',
  'constructor',
  [],
  [[]],
  [null],
  ['NaN'],
  [-1, 16],
  [1, 2 ** 40],
  [2 ** 30, 2 ** 30, 2 ** 30],
  [0, 16],
  [1, 16, 1, 1],
  {},
  { binary_data_size: -1 },
  { binary_data_size: 2 ** 53 },
  { binary_data_size: '64' },
  { binary_data: 'yes' },
  { name: 'x' },
  { __proto__: { polluted: true } },
]);

/** Text substituted for a number or a string in the JSON: some are not JSON at all. */
const TOKENS: readonly string[] = Object.freeze([
  'NaN',
  '-Infinity',
  '1e999',
  '-1e999',
  '-0',
  '9007199254740993',
  '-1',
  '0x10',
  '1.',
  'nul',
  '"\\ud800"',
  '"\\u0000"',
  '{"__proto__":{"x":1}}',
  '[' + '['.repeat(64) + ']'.repeat(64) + ']',
]);

export class Mutator {
  private readonly random: () => number;

  constructor(seed: number) {
    this.random = seededRandom(seed);
  }

  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** Nesting `depth` arrays deep around `inner`, as JSON text (no recursion to build or print it). */
  deep(depth: number, inner = '1'): string {
    return `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;
  }

  /** One structural change somewhere in a copy of `value`: a hostile value set, a key dropped, a level added. */
  mutateJson(value: unknown): unknown {
    const copy = JSON.parse(JSON.stringify(value)) as unknown;
    const containers: (Record<string, unknown> | unknown[])[] = [];
    const walk = (node: unknown) => {
      if (typeof node !== 'object' || node === null) return;
      containers.push(node as Record<string, unknown> | unknown[]);
      for (const child of Object.values(node)) walk(child);
    };
    walk(copy);
    if (containers.length === 0) return this.pick(HOSTILE);
    const target = this.pick(containers);
    const keys = Array.isArray(target) ? target.map((_, i) => String(i)) : Object.keys(target);
    const key =
      keys.length === 0 || this.int(4) === 0
        ? this.pick(['name', 'shape', 'datatype', 'data', 'parameters', 'outputs', 'inputs', 'id', '0'])
        : this.pick(keys);
    const record = target as Record<string, unknown>;
    switch (this.int(4)) {
      case 0:
        Reflect.deleteProperty(record, key);
        break;
      case 1:
        record[key] = [record[key]];
        break;
      default:
        record[key] = this.pick(HOSTILE);
    }
    return copy;
  }

  /** Byte-level damage: flips, truncation, insertion, duplication. */
  mutateBytes(bytes: Buffer): Buffer {
    const out = Buffer.from(bytes);
    switch (this.int(4)) {
      case 0:
        for (let n = 1 + this.int(4); n > 0 && out.length > 0; n--) out[this.int(out.length)] = this.int(256);
        return out;
      case 1:
        return out.subarray(0, this.int(out.length + 1));
      case 2: {
        const at = this.int(out.length + 1);
        return Buffer.concat([out.subarray(0, at), this.bytes(1 + this.int(16)), out.subarray(at)]);
      }
      default: {
        const from = this.int(out.length + 1);
        const slice = out.subarray(from, from + this.int(64));
        return Buffer.concat([out, slice]);
      }
    }
  }

  /** A number or string in the JSON text replaced by a token (often not JSON at all). */
  mutateText(text: string): string {
    const spots = [...text.matchAll(/-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|"[^"]*"/g)];
    if (spots.length === 0) return text;
    const spot = this.pick(spots);
    const at = spot.index;
    const depth = 1 + this.int(5000);
    const roll = this.int(16);
    const token =
      roll === 0 ? this.deep(depth) : roll === 1 ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` : this.pick(TOKENS);
    return text.slice(0, at) + token + text.slice(at + spot[0].length);
  }

  /** The header length a binary request declares: usually right, often off, sometimes not a number. */
  private headerLength(actual: number, total: number): string {
    switch (this.int(6)) {
      case 0:
        return String(actual + this.pick([-2, -1, 1, 2]));
      case 1:
        return this.pick(['-1', '', ' ', 'abc', '1e3', '0x10', '99999999999999999999', String(total + 1), '0']);
      case 2:
        return String(this.int(total + 1));
      default:
        return String(actual);
    }
  }

  /** One hostile request derived from `seed` (or, one time in eight, random bytes). */
  next(seeds: readonly Seed[]): FuzzCase {
    const kind = this.int(8);
    const seed = this.pick(seeds);
    const { model } = seed;
    if (kind === 0) {
      const body = this.bytes(this.int(512));
      const binary = this.int(2) === 0;
      return {
        model,
        body,
        contentType: this.pick(['application/json', 'application/octet-stream', 'image/png']),
        ...(binary ? { headerLength: String(this.int(body.length + 1)) } : {}),
        how: 'random bytes',
      };
    }
    let json = JSON.stringify(kind <= 3 ? this.mutateJson(seed.header) : seed.header);
    let how = kind <= 3 ? 'structural' : 'bytes';
    if (kind === 4 || kind === 5) {
      json = this.mutateText(json);
      how = 'text';
    }
    let header: Buffer = Buffer.from(json);
    let binary = seed.binary;
    if (kind >= 6) {
      if (binary !== undefined && this.int(2) === 0) binary = this.mutateBytes(binary);
      else header = this.mutateBytes(header);
    }
    const contentType = seed.contentType ?? (binary === undefined ? 'application/json' : 'application/octet-stream');
    if (binary === undefined) return { model, body: header, contentType, how };
    const body = Buffer.concat([header, binary]);
    return { model, body, contentType, headerLength: this.headerLength(header.length, body.length), how };
  }
}
