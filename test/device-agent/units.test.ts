import { lstat, mkdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../device-agent/config.js';
import { acceptExecution, type DeploymentContext } from '../../device-agent/deployment/runner.js';
import { runHook } from '../../device-agent/deployment/hooks.js';
import { Spool, type SpoolEntry } from '../../device-agent/storage/spool.js';
import { DeploymentStore } from '../../device-agent/storage/deployment-records.js';
import { ModelStore } from '../../device-agent/storage/model-store.js';
import { OutpostError, isOutpostError } from '../../runtime/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const QUICK = Object.freeze({ minMs: 1, maxMs: 4, jitter: 0, maxAttempts: 3 }); // ms: logic, not timing
const entry = (i: number): SpoolEntry => ({ topic: 'outpost/things/t/events', payload: JSON.stringify({ i }), qos: 1 });

describe('spool', () => {
  it('keeps at most maxEntries, drops the oldest and counts them, across reopen', async () => {
    const dir = await tmpDir();
    const spool = new Spool(dir, { maxEntries: 3, maxBytes: 1 << 20 });
    await spool.open();
    for (let i = 0; i < 5; i++) await spool.push(entry(i));
    expect(spool.size).toBe(3);
    expect(spool.dropped).toBe(2);
    const again = new Spool(dir, { maxEntries: 3, maxBytes: 1 << 20 });
    await again.open();
    expect([again.size, again.dropped]).toEqual([3, 2]);
    const sent: number[] = [];
    await again.flush((e) => {
      sent.push((JSON.parse(e.payload) as { i: number }).i);
      return Promise.resolve();
    });
    expect(sent).toEqual([2, 3, 4]);
    expect(again.size).toBe(0);
  });

  it('keeps everything below its cap, and stops a flush at the first failure without losing the rest', async () => {
    const dir = await tmpDir();
    const spool = new Spool(dir, { maxEntries: 100, maxBytes: 1 << 20 });
    await spool.open();
    for (let i = 0; i < 10; i++) await spool.push(entry(i));
    let calls = 0;
    const sent = await spool.flush(() => (++calls > 4 ? Promise.reject(new Error('offline')) : Promise.resolve()));
    expect(sent).toBe(4);
    expect(spool.size).toBe(6);
    expect(spool.dropped).toBe(0);
  });

  it('removes (and counts) a message the broker refuses for good, and sends the ones behind it', async () => {
    const dir = await tmpDir();
    const spool = new Spool(dir, { maxEntries: 100, maxBytes: 1 << 20 }, QUICK);
    await spool.open();
    for (let i = 0; i < 3; i++) await spool.push(entry(i));
    const sent: number[] = [];
    const delivered = await spool.flush((e) => {
      const i = (JSON.parse(e.payload) as { i: number }).i;
      if (i === 1) return Promise.reject(new OutpostError('TRANSPORT_PUBLISH_REJECTED', 'Not authorized (0x87)'));
      sent.push(i);
      return Promise.resolve();
    });
    expect([delivered, sent, spool.size, spool.refused]).toEqual([2, [0, 2], 0, 1]);
    const again = new Spool(dir, { maxEntries: 100, maxBytes: 1 << 20 });
    await again.open();
    expect(again.refused).toBe(1);
  });

  it('retries a refusal that may pass with backoff, then keeps it; offline stops at once', async () => {
    const spool = new Spool(await tmpDir(), { maxEntries: 100, maxBytes: 1 << 20 }, QUICK);
    await spool.open();
    await spool.push(entry(0));
    let calls = 0;
    const busy = () => {
      calls++;
      return Promise.reject(
        new OutpostError('TRANSPORT_PUBLISH_REJECTED', 'Quota exceeded (0x97)', { retryable: true }),
      );
    };
    expect(await spool.flush(busy)).toBe(0);
    expect([calls, spool.size, spool.refused]).toEqual([QUICK.maxAttempts, 1, 0]);
    calls = 0;
    const offline = () => {
      calls++;
      return Promise.reject(new OutpostError('TRANSPORT_OFFLINE', 'not connected'));
    };
    expect(await spool.flush(offline)).toBe(0);
    expect([calls, spool.size]).toEqual([1, 1]);
  });

  it('bounds bytes too', async () => {
    const spool = new Spool(await tmpDir(), { maxEntries: 1000, maxBytes: 300 });
    await spool.open();
    for (let i = 0; i < 20; i++) await spool.push(entry(i));
    expect(spool.dropped).toBeGreaterThan(0);
    expect(spool.size).toBeLessThan(20);
  });
});

describe('lifecycle hooks', () => {
  const context = { jobId: 'j', model: 'm', version: '1', dir: '/tmp' };

  it('pass the deployment in the environment', async () => {
    const dir = await tmpDir();
    const out = join(dir, 'env');
    await runHook(
      { validate: { command: `echo "$OUTPOST_MODEL@$OUTPOST_VERSION $OUTPOST_HOOK" > ${out}`, timeoutSeconds: 5 } },
      'validate',
      context,
    );
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(out, 'utf8')).trim()).toBe('m@1 validate');
  });

  it('fail with HOOK_FAILED on a non-zero exit, naming the exit code and the output', async () => {
    await expect(
      runHook(
        { validate: { command: 'echo "model answers wrongly" >&2; exit 3', timeoutSeconds: 5 } },
        'validate',
        context,
      ),
    ).rejects.toSatisfy(
      (e) => isOutpostError(e, 'HOOK_FAILED') && /exited 3: model answers wrongly/.test((e as Error).message),
    );
  });

  it('are killed at their timeout, children included', async () => {
    const started = Date.now();
    await expect(
      runHook({ afterActivate: { command: 'sleep 30 & sleep 30', timeoutSeconds: 0.3 } }, 'afterActivate', context),
    ).rejects.toSatisfy((e) => isOutpostError(e, 'HOOK_FAILED') && /timed out/.test((e as Error).message));
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('agent config', () => {
  it('names the bad field and refuses unknown keys', () => {
    expect(() => parseAgentConfig({ thing: 'bad thing!' })).toThrow(/thing: an AWS IoT thing name/);
    expect(() => parseAgentConfig({ thing: 't', brokr: {} })).toThrow(/brokr/);
    expect(() => parseAgentConfig({ thing: 't', broker: { url: 'http://x' } })).toThrow(/broker\.url/);
    expect(parseAgentConfig({ thing: 't' })).toMatchObject({ keepVersions: 3, http: { host: '127.0.0.1' } });
  });
});

describe('model store', () => {
  it('switches versions by renaming a symlink and prunes all but the kept ones', async () => {
    const store = new ModelStore(await tmpDir());
    await store.ensure('m');
    for (const v of ['1', '2', '3', '4']) {
      const staging = store.stagingDir('m', `job${v}`);
      await mkdir(staging);
      await writeFile(join(staging, 'manifest.json'), v);
      await store.install('m', v, staging);
      await store.activate('m', v);
      expect(await readlink(join(store.modelDir('m'), 'current'))).toBe(v);
    }
    await store.activate('m', '2');
    const removed = await store.prune('m', 2, ['3']);
    expect((await store.versions('m')).sort()).toEqual(['2', '3']);
    expect(removed.sort()).toEqual(['1', '4']);
    expect((await lstat(join(store.modelDir('m'), 'current'))).isSymbolicLink()).toBe(true);
  });
});

describe('accepting a job execution', () => {
  async function context(): Promise<DeploymentContext> {
    const dir = await tmpDir();
    return {
      config: parseAgentConfig({ thing: 't', dataDir: dir, models: ['cnn'] }),
      store: new ModelStore(join(dir, 'store')),
      deployments: new DeploymentStore(join(dir, 'deployments')),
    } as unknown as DeploymentContext; // acceptExecution reads only these (the rest is for running steps)
  }
  const execution = (jobDocument: unknown) => ({
    jobId: 'j1',
    thingName: 't',
    status: 'IN_PROGRESS' as const,
    queuedAt: 0,
    lastUpdatedAt: 0,
    versionNumber: 2,
    executionNumber: 1,
    jobDocument: jobDocument as Record<string, unknown>,
  });

  it('rejects an oversized document as JOB_DOCUMENT_TOO_LARGE before reading it', async () => {
    const state = await acceptExecution(await context(), execution({ notes: 'x'.repeat(40_000) }));
    expect(state.outcome).toMatchObject({ status: 'REJECTED', code: 'JOB_DOCUMENT_TOO_LARGE' });
    expect(state.step).toBe('reporting');
  });

  it('rejects a malformed document naming the field', async () => {
    const state = await acceptExecution(
      await context(),
      execution({ operation: 'outpost.deploy', schemaVersion: 1, model: { name: 'cnn', version: '1' } }),
    );
    expect(state.outcome).toMatchObject({ status: 'REJECTED', code: 'JOB_DOCUMENT_INVALID' });
    expect(state.outcome?.message).toContain('artifact');
  });
});
