import { readFile } from 'node:fs/promises';
import { fromFsError } from '../../runtime/errors.js';
import type { TlsFiles } from './types.js';

/** TLS material as PEM text, whatever the configuration held (PEM text or file paths). Never log these values. */
export interface TlsMaterial {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly rejectUnauthorized: boolean;
}

const PEM_HEADER = '-----BEGIN ';

/** PEM text is used as is; anything else is a path to a PEM file. */
export async function readPem(value: string): Promise<string> {
  if (value.includes(PEM_HEADER)) return value;
  try {
    return await readFile(value, 'utf8');
  } catch (error) {
    throw fromFsError(error, value, 'read');
  }
}

export async function readTls(tls: TlsFiles | undefined): Promise<TlsMaterial> {
  const [ca, cert, key] = await Promise.all(
    [tls?.ca, tls?.cert, tls?.key].map((value) => (value === undefined ? Promise.resolve(undefined) : readPem(value))),
  );
  return { ca, cert, key, rejectUnauthorized: tls?.rejectUnauthorized !== false };
}
