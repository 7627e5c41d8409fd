import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './net.js';

const run = promisify(execFile);

export const POSTGRES_START_TIMEOUT_S = 30; // seconds pg_ctl waits for the server to accept connections
const PG_ROOT = '/usr/lib/postgresql';
/** The server refuses to run as root; CI runs as root, so the server runs as this user (Debian's package makes it). */
const SERVER_USER = 'postgres';
const SUPERUSER = 'outpost';

export interface TestPostgres {
  readonly port: number;
  /** A fresh, empty database on this server: its URL. */
  database(name: string): Promise<string>;
  /** SIGKILL of the postmaster (pg_ctl stop -m immediate): a database that goes away. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Debian's server binaries (`postgresql` package), newest major first; undefined when absent. */
export function postgresBin(): string | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const majors = readdirSync(PG_ROOT)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const bin = join(PG_ROOT, major, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return undefined;
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresUnavailable(): string | undefined {
  if (postgresBin() === undefined) return `PostgreSQL not installed (apt-get install postgresql; looked in ${PG_ROOT})`;
  if (isRoot() && !hasUser(SERVER_USER))
    return `running as root and there is no "${SERVER_USER}" user to run the server`;
  return undefined;
}

let noticeGiven = false;
/** Says once on stderr that the PostgreSQL half of a suite is skipped, and why. */
export function noticePostgresSkipped(reason: string): void {
  if (noticeGiven) return;
  noticeGiven = true;
  process.stderr.write(`postgres harness: ${reason}; the PostgreSQL tests are skipped\n`);
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function hasUser(name: string): boolean {
  return spawnSync('id', ['-u', name]).status === 0;
}

/** Runs a server binary, as the `postgres` user when we are root (runuser), as ourselves otherwise. */
async function asServerUser(bin: string, args: readonly string[]): Promise<string> {
  const [file, argv] = isRoot() ? ['runuser', ['-u', SERVER_USER, '--', bin, ...args]] : [bin, [...args]];
  const { stdout } = await run(file, argv, { timeout: (POSTGRES_START_TIMEOUT_S + 10) * 1000 });
  return stdout;
}

/**
 * A real PostgreSQL server for one suite: initdb in a temporary directory owned by the server's user, pg_ctl on a
 * free loopback port (fsync off: the tests kill it on purpose, not the machine). Trust authentication on loopback
 * only. Every test database is created fresh with `database(name)`.
 */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBin();
  if (bin === undefined) throw new Error(postgresUnavailable() ?? 'PostgreSQL not installed');
  const dir = await mkdtemp(join(tmpdir(), 'outpost-pg-'));
  const data = join(dir, 'data');
  if (isRoot()) {
    const { uid, gid } = await serverIds();
    chownSync(dir, uid, gid);
  }
  const port = await freePort();
  const pgCtl = join(bin, 'pg_ctl');
  await asServerUser(join(bin, 'initdb'), ['-D', data, '-U', SUPERUSER, '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off -c max_connections=60`;
  const killOnExit = () => {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  };
  process.on('exit', killOnExit);
  const start = () =>
    asServerUser(pgCtl, [
      '-D',
      data,
      '-o',
      options,
      '-l',
      join(dir, 'server.log'),
      '-w',
      '-t',
      String(POSTGRES_START_TIMEOUT_S),
      'start',
    ]);
  const stopWith = (mode: 'fast' | 'immediate') =>
    asServerUser(pgCtl, ['-D', data, '-m', mode, '-w', 'stop']).catch(() => '');
  await start();
  const admin = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
  return {
    port,
    async database(name) {
      const client = new pg.Client({ connectionString: admin });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return `postgres://${SUPERUSER}@127.0.0.1:${port}/${name}`;
    },
    kill: async () => {
      await stopWith('immediate');
    },
    start: async () => {
      await start();
    },
    stop: async () => {
      await stopWith('fast');
      process.off('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function serverIds(): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', SERVER_USER])).stdout.trim());
  const gid = Number((await run('id', ['-g', SERVER_USER])).stdout.trim());
  return { uid, gid };
}
