import { execFileSync } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy } from '../../fleet/deploy.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { startAgent, type AgentProcess } from '../helpers/agent.js';
import { suiteTmpDir } from '../helpers/tmp.js';
import {
  agentArgs,
  cnnArtifact,
  fleetTls,
  signingKeys,
  type Keys,
  inferCnnVersion,
} from '../helpers/signed-artifacts.js';

const DEPLOY_TIMEOUT_MS = 60_000; // ms for one deployment to reach a terminal status
const DISK_BYTES = 16 * 1024 * 1024; // a small real filesystem: the agent's whole data directory lives on it
const FILL_CHUNK = 256 * 1024; // bytes written per step while filling the disk

/** Mounts a tmpfs of `bytes` at `path`; false where this process may not (not root, or no CAP_SYS_ADMIN). */
function mountTmpfs(path: string, bytes: number): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', path], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** As fill(), synchronously: from inside the fleet's block hook, so the disk fills between two steps of a download. */
function fillNow(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(FILL_CHUNK, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

/** Writes `path` until the filesystem says ENOSPC: the disk is then really full. */
async function fill(path: string): Promise<void> {
  const file = await open(path, 'w');
  const chunk = Buffer.alloc(FILL_CHUNK, 1);
  try {
    for (;;) await file.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await file.close().catch(() => undefined);
  }
}

let dir: string;
let dispose: () => Promise<void>;
let disk: string;
let mounted = false;
let broker: TestBroker;
let keys: Keys;
let agent: AgentProcess | undefined;
let http: string;
const THING = 'full-disk-1';

beforeAll(async () => {
  ({ dir, dispose } = await suiteTmpDir());
  disk = join(dir, 'disk');
  await mkdir(disk);
  mounted = mountTmpfs(disk, DISK_BYTES);
  if (!mounted) {
    process.stderr.write('disk-full: skipped, mounting a tmpfs needs root with CAP_SYS_ADMIN\n');
    return;
  }
  broker = await startBroker();
  keys = await signingKeys(dir, 'trusted');
  const config = join(dir, 'agent.json');
  await writeFile(config, JSON.stringify({ thing: THING, diskMarginBytes: 512 * 1024 }));
  agent = startAgent(await agentArgs(broker, THING, keys.publicKeyPath, config), join(disk, 'data'));
  http = await agent.http();
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  if (mounted) {
    await broker.stop();
    execFileSync('umount', [disk], { stdio: 'ignore' });
  }
  await dispose();
});

async function ship(artifact: string, onBlock?: (b: { fileId: number; block: number; attempt: number }) => 'send') {
  const result = await deploy({
    artifact,
    things: [THING],
    brokerUrl: broker.urls.mtls,
    tls: await fleetTls(broker),
    wait: true as const,
    timeoutMs: DEPLOY_TIMEOUT_MS,
    ...(onBlock === undefined ? {} : { testHooks: { onBlock } }),
  });
  return result.things[0];
}

const inferVersion = (): Promise<string> => inferCnnVersion(http);

describe('device agent on a really full disk (a tmpfs filled to ENOSPC)', () => {
  it('keeps serving, fails the deployment with DISK_FULL, and deploys again once there is room', async (context) => {
    context.skip(!mounted, 'mounting a tmpfs needs root with CAP_SYS_ADMIN');
    expect((await ship(await cnnArtifact(join(dir, 'a1'), '1.0.0', keys)))?.status).toBe('SUCCEEDED');
    expect(await inferVersion()).toBe('1.0.0');

    const v2 = await cnnArtifact(join(dir, 'a2'), '2.0.0', keys);
    const filler = join(disk, 'filler');
    await fill(filler);
    const failed = await ship(v2);
    expect(failed?.status, JSON.stringify(failed)).toBe('FAILED');
    expect(failed?.statusDetails.reasonCode).toBe('DISK_FULL');
    expect(await inferVersion()).toBe('1.0.0'); // the old version never stopped serving
    expect(agent?.child.exitCode).toBeNull();

    await rm(filler);
    expect((await ship(v2))?.status).toBe('SUCCEEDED');
    expect(await inferVersion()).toBe('2.0.0');
  });

  it('fails with DISK_FULL when the disk fills during the download, then carries on with the next job', async (context) => {
    context.skip(!mounted, 'mounting a tmpfs needs root with CAP_SYS_ADMIN');
    const filler = join(disk, 'filler-2');
    const v3 = await cnnArtifact(join(dir, 'a3'), '3.0.0', keys);
    let filled = false;
    const failed = await ship(v3, (b) => {
      // The first artifact block: the agent has accepted the job and recorded it; now the disk is full.
      if (b.fileId === 1 && !filled) {
        filled = true;
        fillNow(filler);
      }
      return 'send';
    });
    expect(filled).toBe(true);
    expect(failed?.status, JSON.stringify(failed)).toBe('FAILED');
    expect(failed?.statusDetails.reasonCode).toBe('DISK_FULL');
    expect(await inferVersion()).toBe('2.0.0');

    await rm(filler);
    // Its record stopped at "downloading" (the failure could not be written): the next round closes it, since the
    // job has ended, rather than resuming a download nobody serves any more.
    expect((await ship(await cnnArtifact(join(dir, 'a4'), '4.0.0', keys)))?.status).toBe('SUCCEEDED');
    expect(await inferVersion()).toBe('4.0.0');
  });
});
