import { OutpostError } from '../errors.js';

/**
 * Deterministic JSON for signing, after RFC 8785 (JSON Canonicalization Scheme): object keys sorted by UTF-16 code
 * units (§3.2.3), no insignificant whitespace (§3.2.1), numbers and strings serialised as ECMAScript's JSON.stringify
 * does (§3.2.2.2, §3.2.2.3). The signature covers `canonicalJson(JSON.parse(manifest.json))`, so re-indenting the
 * file by hand or by a tool never invalidates it, while any change of content does.
 *
 * Only JSON's own data model is accepted. Anything JSON.stringify would silently turn into something else (NaN → null,
 * undefined in an array → null, a Date → string, a Map → {}) is refused, because a signer and a verifier that disagree
 * on such a conversion would disagree on the signed bytes.
 */
export function canonicalJson(value: unknown): string {
  return serialise(value, new Format('', ':'), 0, '$', []);
}

/**
 * The human form of manifest.json: the same sorted keys, two-space indentation and a trailing newline, so the file
 * diffs well and `canonicalJson(JSON.parse(prettyJson(v))) === canonicalJson(v)`.
 */
export function prettyJson(value: unknown): string {
  return `${serialise(value, new Format('  ', ': '), 0, '$', [])}\n`;
}

class Format {
  constructor(
    readonly indent: string,
    readonly colon: string,
  ) {}

  open(depth: number): string {
    return this.indent === '' ? '' : `\n${this.indent.repeat(depth + 1)}`;
  }

  close(depth: number): string {
    return this.indent === '' ? '' : `\n${this.indent.repeat(depth)}`;
  }
}

function serialise(value: unknown, format: Format, depth: number, path: string, ancestors: object[]): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // RFC 8785 §3.2.2.3: ECMAScript's Number serialisation; NaN and ±Infinity have no JSON form.
      if (!Number.isFinite(value)) throw notJson(path, `the number ${String(value)}`);
      return JSON.stringify(value);
    case 'object':
      if (value === null) return 'null';
      if (ancestors.includes(value)) throw notJson(path, 'a circular reference');
      return serialiseContainer(value, format, depth, path, [...ancestors, value]);
    default:
      throw notJson(path, `a value of type ${typeof value}`);
  }
}

function serialiseContainer(value: object, format: Format, depth: number, path: string, ancestors: object[]): string {
  if (Array.isArray(value)) {
    const items = (value as unknown[]).map((item, index) => {
      if (item === undefined) throw notJson(`${path}[${index}]`, 'undefined (JSON.stringify would write null)');
      return serialise(item, format, depth + 1, `${path}[${index}]`, ancestors);
    });
    if (items.length === 0) return '[]';
    return `[${format.open(depth)}${items.join(`,${format.open(depth)}`)}${format.close(depth)}]`;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw notJson(
      path,
      `an instance of ${(value as { constructor?: { name?: string } }).constructor?.name ?? 'a class'}`,
    );
  }
  const record = value as Record<string, unknown>;
  // RFC 8785 §3.2.3: sort by UTF-16 code units, which is exactly what the default Array.prototype.sort compares.
  const members = Object.keys(record)
    .sort()
    .filter((key) => record[key] !== undefined) // an absent optional field, as JSON.stringify omits it
    .map((key) => {
      const child = serialise(record[key], format, depth + 1, `${path}${memberPath(key)}`, ancestors);
      return `${JSON.stringify(key)}${format.colon}${child}`;
    });
  if (members.length === 0) return '{}';
  return `{${format.open(depth)}${members.join(`,${format.open(depth)}`)}${format.close(depth)}}`;
}

function memberPath(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function notJson(path: string, what: string): OutpostError {
  return new OutpostError('INVALID_ARGUMENT', `cannot serialise ${path} as canonical JSON: ${what}`, {
    details: { path, accepted: 'null, booleans, finite numbers, strings, arrays and plain objects' },
  });
}
