import { InvalidArgumentError } from 'commander';

/** `--input-shape name=1,3,224,224`, repeatable: input name → full shape. */
export function parseInputShape(value: string, previous: Record<string, number[]> = {}): Record<string, number[]> {
  const match = /^([^=]+)=(\d+(?:,\d+)*)$/.exec(value.trim());
  if (match === null) {
    throw new InvalidArgumentError(`"${value}" is not name=d0,d1,… (e.g. input=1,3,224,224)`);
  }
  const [, name, dims] = match as unknown as [string, string, string];
  return { ...previous, [name]: dims.split(',').map(Number) };
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`"${value}" is not a positive integer`);
  return n;
}

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`"${value}" is not a non-negative integer`);
  return n;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function choice<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`"${value}" is not one of ${choices.join(', ')}`);
    }
    return value as T;
  };
}
