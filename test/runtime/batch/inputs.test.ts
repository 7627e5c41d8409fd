import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandGlob, Journal, listInputs } from '../../../runtime/batch/index.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { tmpDir } from '../../helpers/tmp.js';

async function tree(root: string, files: readonly string[]): Promise<void> {
  for (const file of files) {
    await mkdir(join(root, file, '..'), { recursive: true });
    await writeFile(join(root, file), '');
  }
}

describe('batch inputs', () => {
  it('expands *, ?, [..] within a segment and ** across segments, skipping dot files', async () => {
    const root = await tmpDir();
    await tree(root, ['a1.png', 'a2.png', 'b1.png', '.hidden.png', 'x/a3.png', 'x/y/a4.png', 'x/y/c.npy']);
    expect(await expandGlob(join(root, 'a?.png'))).toEqual([join(root, 'a1.png'), join(root, 'a2.png')]);
    expect(await expandGlob(join(root, '[ab]1.*'))).toEqual([join(root, 'a1.png'), join(root, 'b1.png')]);
    expect(await expandGlob(join(root, '**', 'a*.png'))).toEqual(
      ['a1.png', 'a2.png', 'x/a3.png', 'x/y/a4.png'].map((f) => join(root, f)),
    );
    expect(await expandGlob(join(root, 'nowhere', '*.png'))).toEqual([]);
  });

  it('refuses two inputs with one name, and an empty set', async () => {
    const root = await tmpDir();
    await tree(root, ['one/a.png', 'two/a.png', 'empty/README.txt']);
    const duplicate = await listInputs([join(root, 'one'), join(root, 'two')]).catch((e: unknown) => e);
    expect(isOutpostError(duplicate, 'INVALID_ARGUMENT') && duplicate.message).toMatch(/two inputs are named "a.png"/);
    const empty = await listInputs([join(root, 'empty')]).catch((e: unknown) => e);
    expect(isOutpostError(empty, 'INVALID_ARGUMENT')).toBe(true);
    const missing = await listInputs([join(root, 'gone.png')]).catch((e: unknown) => e);
    expect(isOutpostError(missing, 'FILE_NOT_FOUND')).toBe(true);
  });
});

describe('batch journal', () => {
  it('on resume cuts a torn last line and appends after it; refuses a file that is not a batch output', async () => {
    const root = await tmpDir();
    const path = join(root, 'out.jsonl');
    await writeFile(
      path,
      '{"name":"a","outputs":{}}\n{"name":"b","error":{"code":"INPUT_INVALID"}}\n{"name":"c","outp',
    );
    const journal = Journal.open(path, { resume: true, overwrite: false });
    expect([...journal.state.done]).toEqual([
      ['a', {}],
      ['b', { error: 'INPUT_INVALID' }],
    ]);
    expect(journal.state.discardedBytes).toBe('{"name":"c","outp'.length);
    journal.append({ name: 'c', outputs: {} });
    journal.close();
    expect((await readFile(path, 'utf8')).split('\n')).toEqual([
      '{"name":"a","outputs":{}}',
      '{"name":"b","error":{"code":"INPUT_INVALID"}}',
      '{"name":"c","outputs":{}}',
      '',
    ]);

    const other = join(root, 'notes.txt');
    await writeFile(other, 'shopping list\nmilk\n');
    let error: unknown;
    try {
      Journal.open(other, { resume: true, overwrite: false });
    } catch (e) {
      error = e;
    }
    expect(isOutpostError(error, 'BATCH_JOURNAL_INVALID') && error.message).toMatch(/notes\.txt:1 /);
    expect(await readFile(other, 'utf8')).toBe('shopping list\nmilk\n'); // untouched
  });
});
