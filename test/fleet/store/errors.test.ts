import Sqlite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../../fleet/store/index.js';
import { freePort } from '../../helpers/net.js';
import { artifactRecord, newDeployment } from '../../helpers/fleet-records.js';
import { storeKinds } from '../../helpers/fleet-stores.js';

const FAST_RETRY = Object.freeze({ attempts: 3, baseMs: 20, maxMs: 50 });

const [sqlite, postgres] = storeKinds();
if (sqlite === undefined || postgres === undefined) throw new Error('two store kinds expected');

describe('a database that is locked, full or unreachable', () => {
  it('SQLite locked by another writer: STORE_LOCKED once retries run out, success when the lock goes within them', async () => {
    const url = await sqlite.url('locked');
    const store = await openStore({ url, sqliteBusyTimeoutMs: 50, retry: FAST_RETRY });
    const other = new Sqlite(url.slice('sqlite:'.length));
    try {
      other.exec('BEGIN EXCLUSIVE');
      await expect(store.recordStatus({ name: 'pi-1', connected: true, atMs: 1 })).rejects.toMatchObject({
        code: 'STORE_LOCKED',
        retryable: true,
        message: expect.stringMatching(/database is locked|busy/i) as unknown,
      });
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
      await expect(store.createDeployment(newDeployment('big', [artifact]), things)).rejects.toMatchObject({
        code: 'STORE_FULL',
        message: expect.stringContaining('full') as unknown,
      });
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
    const refused = openStore({
      url: `postgres://fleet:secret@127.0.0.1:${port}/fleet`,
      retry: FAST_RETRY,
      postgresConnectTimeoutMs: 500,
    });
    await expect(refused).rejects.toMatchObject({
      code: 'STORE_UNREACHABLE',
      message: expect.stringContaining(`127.0.0.1:${port}/fleet`) as unknown,
    });
    await expect(refused).rejects.not.toThrow('secret');
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
        await expect(store.recordStatus({ name: 'pi-2', connected: true, atMs: 2 })).rejects.toMatchObject({
          code: 'STORE_UNREACHABLE',
        });
        await server.start();
        await store.recordStatus({ name: 'pi-2', connected: true, atMs: 3 });
        expect((await store.listThings()).map((t) => t.name)).toEqual(['pi-1', 'pi-2']);
      } finally {
        await store.close();
      }
    },
  );
});
