import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, relative, sep } from 'node:path';
import { OutpostError, fromFsError } from '../errors.js';
import { IMAGE_EXTENSIONS } from '../pipeline/index.js';
import { expandGlob, isGlob } from './glob.js';

/**
 * One input of a batch, named as it will appear in the output (and as `--resume` recognises it): a file (an image,
 * a `.npy` or `.json` tensor file, an Open Inference Protocol request), or one line of a `.jsonl` file holding a
 * request body. Items are listed cheaply; reading and decoding happen when the item runs, so a bad one fails alone.
 */
export type BatchItem =
  | { readonly kind: 'file'; readonly name: string; readonly path: string }
  | { readonly kind: 'request'; readonly name: string; readonly where: string; readonly text: string };

/** Files a directory contributes: images and tensor files; anything else (a README, a .txt) is not an input. */
export const INPUT_EXTENSIONS: ReadonlySet<string> = new Set([...IMAGE_EXTENSIONS, '.npy', '.json']);

/** Names are `/`-separated whatever the platform, so a journal resumes on another machine. */
const portable = (path: string) => path.split(sep).join('/');

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch((error: unknown) => {
    throw fromFsError(error, dir, 'read');
  });
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.') && INPUT_EXTENSIONS.has(extname(e.name).toLowerCase()))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/**
 * The lines of a `.jsonl` file, each one input: `{ "path": "a.jpg" }` (relative to the .jsonl's folder) names a
 * file; anything else is a request body (`{ "inputs": [ … ] }`, or a map of input name → tensor). `"id"` (else
 * `"name"`, else the file's path for a `path` line) names the input; without one it is `<file>:<line>`. A line that
 * is not JSON is still an input: it fails alone with INPUT_INVALID when it runs.
 */
async function linesOf(file: string): Promise<BatchItem[]> {
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw fromFsError(error, file, 'read');
  });
  const items: BatchItem[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `${file}:${index + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      items.push({ kind: 'request', name: where, where, text: line });
      return;
    }
    const record = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
    const id = typeof record.id === 'string' ? record.id : typeof record.name === 'string' ? record.name : undefined;
    if (typeof record.path === 'string') {
      const path = isAbsolute(record.path) ? record.path : join(dirname(file), record.path);
      items.push({ kind: 'file', name: id ?? portable(record.path), path });
    } else items.push({ kind: 'request', name: id ?? where, where, text: line });
  });
  return items;
}

async function kindOf(path: string): Promise<'dir' | 'file' | undefined> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'file';
  } catch {
    return undefined;
  }
}

/**
 * Every input the arguments name, in order: a directory (its input files, recursively, sorted, named relative to
 * it), a glob (its matches, named as matched), a `.jsonl` file (its lines), or a file (named as given). Two inputs
 * with one name are refused (INVALID_ARGUMENT), since the name is what `--resume` goes by; so is an empty set.
 */
export async function listInputs(args: readonly string[]): Promise<BatchItem[]> {
  const items: BatchItem[] = [];
  for (const arg of args) {
    const kind = await kindOf(arg);
    if (kind === 'dir') {
      for (const path of await filesUnder(arg)) items.push({ kind: 'file', name: portable(relative(arg, path)), path });
    } else if (kind === 'file' && extname(arg).toLowerCase() === '.jsonl') {
      items.push(...(await linesOf(arg)));
    } else if (kind === 'file') {
      items.push({ kind: 'file', name: portable(arg), path: arg });
    } else if (isGlob(arg)) {
      const matches = await expandGlob(arg);
      if (matches.length === 0) throw new OutpostError('FILE_NOT_FOUND', `no file matches ${arg}`);
      for (const path of matches) items.push({ kind: 'file', name: portable(path), path });
    } else throw new OutpostError('FILE_NOT_FOUND', `input ${arg}: no such file or directory`, { details: { arg } });
  }
  if (items.length === 0) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `no inputs in ${args.join(' ')} (inputs: ${[...INPUT_EXTENSIONS].join(' ')}, .jsonl)`,
    );
  }
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.name)) {
      throw new OutpostError(
        'INVALID_ARGUMENT',
        `two inputs are named "${item.name}": names must be unique, --resume goes by them (give .jsonl lines an "id")`,
        { details: { name: item.name } },
      );
    }
    seen.add(item.name);
  }
  return items;
}
