import Sqlite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cachingDatabase } from '../../../fleet/store/sqlite-statements.js';

describe('cachingDatabase (SQLite prepared statements kept per SQL text)', () => {
  it('prepares a text once, drops the least recently used past its size, and closes the database', () => {
    const raw = new Sqlite(':memory:');
    const db = cachingDatabase(raw, 2);
    const a = db.prepare('SELECT 1 AS a');
    const b = db.prepare('SELECT 2 AS b');
    expect(db.prepare('SELECT 1 AS a')).toBe(a); // a is now the most recent: b goes first
    db.prepare('SELECT 3 AS c');
    expect(db.prepare('SELECT 1 AS a')).toBe(a);
    expect(db.prepare('SELECT 2 AS b')).not.toBe(b);
    db.close();
    expect(raw.open).toBe(false);
  });

  it('a kept SELECT * sees a column a migration added after it was prepared', () => {
    const db = cachingDatabase(new Sqlite(':memory:'));
    db.prepare('CREATE TABLE t (a INTEGER)').run([]);
    db.prepare('INSERT INTO t (a) VALUES (1)').run([]);
    expect(db.prepare('SELECT * FROM t').all([])).toEqual([{ a: 1 }]);
    db.prepare("ALTER TABLE t ADD COLUMN b TEXT NOT NULL DEFAULT 'x'").run([]);
    expect(db.prepare('SELECT * FROM t').all([])).toEqual([{ a: 1, b: 'x' }]);
    db.close();
  });
});
