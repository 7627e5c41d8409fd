import Sqlite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../../fleet/store/index.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { freePort } from '../../helpers/net.js';
import { artifactRecord, newDeployment } from './fixtures.js';
import { storeKinds } from './stores.js';

const FAST_RETRY = Object.freeze({ attempts: 3, baseMs: 20, maxMs: 50 });

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

const [sqlite, postgres] = storeKinds();
if (sqlite === undefined || postgres === undefined) throw new Error('two store kinds expected');

describe('a database that is locked, full or unreachable', () => {
  it('SQLite locked by another writer: STORE_LOCKED once retries run out, success when the lock goes within them', async () => {
    const url = await sqlite.url('locked');
    const store = await openStore({ url, sqliteBusyTimeoutMs: 50, retry: FAST_RETRY });
    const other = new Sqlite(url.slice('sqlite:'.length));
    try {
      other.exec('BEGIN EXCLUSIVE');
      const locked = await rejection(store.recordStatus({ name: 'pi-1', connected: true, atMs: 1 }));
      expect(isOutpostError(locked, 'STORE_LOCKED')).toBe(true);
      expect((locked as { retryable: boolean }).retryable).toBe(true);
      expect((locked as Error).message).toMatch(/database is locked|busy/i);
      other.exec('COMMIT');
      // The lock is released while the store is between attempts: the write goes through, once.
      const store2 = await openStore({ url, sqliteBusyTimeoutMs: 50, retry: { attempts: 8, baseMs: 40, maxMs: 80 } });
      other.exec('BEGIN EXCLUSIVE');
      setTimeout(() => other.exec('COMMIT'), 60);
      const written = await store2.recordStatus({ name: 'pi-1', connected: true, atMs: 2 });
      expect(written.created).toBe(true);
      expect((await store2.listThings()).map((t) => t.name)).toEqual(['pi-1']);
      await store2.close();
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
      await store.close();
    }
  });

  it('SQLite full: STORE_FULL, the deployment is not half-written, and the store stays usable', async () => {
    const url = await sqlite.url('full');
    const store = await openStore({ url, sqliteMaxPageCount: 48, retry: FAST_RETRY });
    try {
      const artifact = artifactRecord(1);
      await store.putArtifact(artifact);
      const things = Array.from({ length: 5_000 }, (_, i) => ({
        thing: `thing-${i}-${'x'.repeat(60)}`,
        status: 'QUEUED' as const,
        artifact: artifact.sha256,
      }));
      const full = await rejection(store.createDeployment(newDeployment('big', [artifact]), things));
      expect(isOutpostError(full, 'STORE_FULL')).toBe(true);
      expect((full as Error).message).toContain('full');
      expect(await store.getDeployment('big')).toBeUndefined();
      expect(await store.listExecutions('big')).toEqual([]);
      expect(await store.eventsAfter(0, 10)).toEqual([]);
      const small = await store.createDeployment(newDeployment('small', [artifact]), things.slice(0, 3));
      expect(small.state).toBe('ACTIVE');
    } finally {
      await store.close();
    }
  });

  it('PostgreSQL unreachable: STORE_UNREACHABLE naming the database (password redacted)', async () => {
    const port = await freePort();
    const refused = await rejection(
      openStore({
        url: `postgres://fleet:secret@127.0.0.1:${port}/fleet`,
        retry: FAST_RETRY,
        postgresConnectTimeoutMs: 500,
      }),
    );
    expect(isOutpostError(refused, 'STORE_UNREACHABLE')).toBe(true);
    expect((refused as Error).message).toContain(`127.0.0.1:${port}/fleet`);
    expect((refused as Error).message).not.toContain('secret');
  });

  it.skipIf(postgres.skip)(
    'PostgreSQL going away mid-run: typed errors while down, the same store works once it is back',
    async () => {
      const store = await openStore({
        url: await postgres.url('restart'),
        retry: FAST_RETRY,
        postgresConnectTimeoutMs: 500,
      });
      const server = postgres.server();
      if (server === undefined) throw new Error('no server');
      try {
        await store.recordStatus({ name: 'pi-1', connected: true, atMs: 1 });
        await server.kill();
        const down = await rejection(store.recordStatus({ name: 'pi-2', connected: true, atMs: 2 }));
        expect(isOutpostError(down, 'STORE_UNREACHABLE')).toBe(true);
        await server.start();
        await store.recordStatus({ name: 'pi-2', connected: true, atMs: 3 });
        expect((await store.listThings()).map((t) => t.name)).toEqual(['pi-1', 'pi-2']);
      } finally {
        await store.close();
      }
    },
  );
});
