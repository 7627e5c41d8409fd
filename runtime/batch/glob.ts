import { readdir } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { fromFsError } from '../errors.js';

/**
 * A small glob, enough for input sets (Node 20 has no `fs.glob`): `*` and `?` within one path segment, `**` across
 * segments, `[abc]`/`[a-z]` classes; no braces, no negation. A shell usually expands an unquoted pattern itself; a
 * quoted one (`'photos/**\/*.jpg'`) arrives here.
 */
export function isGlob(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}

/** One segment's pattern → a regular expression over that segment. */
function segmentRegExp(segment: string): RegExp {
  let source = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i] as string;
    if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else if (c === '[') {
      const end = segment.indexOf(']', i + 1);
      if (end < 0) source += '\\[';
      else {
        source += `[${segment.slice(i + 1, end).replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else source += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** Files (not directories) matching `pattern`, sorted; dot files match only a segment that starts with a dot. */
export async function expandGlob(pattern: string): Promise<string[]> {
  const segments = pattern.split(/[\\/]+/);
  const fixed: string[] = [];
  while (segments.length > 1 && !isGlob(segments[0] as string)) fixed.push(segments.shift() as string);
  const root = fixed.length === 0 ? '.' : fixed.join(sep) || sep;
  const found: string[] = [];
  await walk(root, segments, found);
  return [...new Set(found)].sort();
}

async function walk(dir: string, segments: readonly string[], found: string[]): Promise<void> {
  const [head, ...rest] = segments;
  if (head === undefined) return;
  if (head === '**') {
    await walk(dir, rest, found); // ** matches zero segments
    for (const entry of await list(dir)) {
      if (entry.isDirectory() && !entry.name.startsWith('.')) await walk(join(dir, entry.name), segments, found);
    }
    return;
  }
  const match = segmentRegExp(head);
  for (const entry of await list(dir)) {
    if (entry.name.startsWith('.') && !head.startsWith('.')) continue;
    if (!match.test(entry.name)) continue;
    const path = dir === '.' ? entry.name : join(dir, entry.name);
    if (rest.length === 0) {
      if (entry.isFile()) found.push(path);
    } else if (entry.isDirectory()) await walk(path, rest, found);
  }
}

async function list(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR')
      return [];
    throw fromFsError(error, dir, 'read');
  }
}
