import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createTestCa } from '../helpers/certs.js';
import { runCli } from '../helpers/cli.js';
import { cliEntry } from '../helpers/cli-entry.js';
import { ROOT } from '../helpers/models.js';
import { connectPeer } from '../helpers/mqtt.js';
import { tmpDir } from '../helpers/tmp.js';

export const CLI_START_TIMEOUT_MS = 20_000; // milliseconds for tsx to load the CLI and the broker to listen
export const MESSAGE_TIMEOUT_MS = 3_000; // milliseconds for a message through the broker

interface Listening {
  urls: string[];
  ports: { mqtt: number; ws?: number; mqtts?: number; wss?: number };
}

/** `outpost broker …` as a real child process, until it prints where it listens; then stop() sends SIGTERM. */
async function startCli(args: readonly string[]) {
  const child = spawn(process.execPath, [...cliEntry(), 'broker', ...args, '--json'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const listening = await new Promise<Listening>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no JSON from outpost broker: ${stderr}`)), CLI_START_TIMEOUT_MS);
    const check = () => {
      try {
        resolve(JSON.parse(stdout) as Listening);
        clearTimeout(timer);
      } catch {
        // not all of it yet
      }
    };
    child.stdout.on('data', check);
    void exited.then(() => reject(new Error(`outpost broker exited: ${stderr}`)));
  });
  return {
    listening,
    stop: async () => {
      child.kill('SIGTERM');
      return { code: await exited, stderr };
    },
  };
}

describe('outpost broker', () => {
  it('serves MQTT over TCP and WebSockets until SIGTERM, then exits 0', async () => {
    const broker = await startCli(['--port', '0', '--ws-port', '0']);
    const { urls, ports } = broker.listening;
    expect(urls).toEqual([`mqtt://127.0.0.1:${ports.mqtt}`, `ws://127.0.0.1:${ports.ws ?? 0}`]);
    const [tcp, ws] = await Promise.all(urls.map((url) => connectPeer(url, { mqtt5: false })));
    if (tcp === undefined || ws === undefined) throw new Error('two peers expected');
    await ws.subscribe('outpost/things/demo/#');
    await tcp.publish('outpost/things/demo/hello', 'over tcp');
    expect((await ws.inbox.wait('outpost/things/demo/hello', 1, MESSAGE_TIMEOUT_MS)).map(String)).toEqual(['over tcp']);
    await Promise.all([tcp.close(), ws.close()]);
    expect(await broker.stop()).toEqual({ code: 0, stderr: '' });
  });

  it('requires device certificates on the TLS and secure WebSocket ports with --ca', async () => {
    const ca = await createTestCa(await tmpDir());
    const device = await ca.client('thing-cli');
    const broker = await startCli([
      '--port',
      '0',
      '--tls-port',
      '0',
      '--tls-cert',
      ca.server.certPath,
      '--tls-key',
      ca.server.keyPath,
      '--ca',
      ca.caPath,
      '--wss-port',
      '0',
    ]);
    const local = (scheme: string) =>
      broker.listening.urls.find((url) => url.startsWith(scheme))?.replace('127.0.0.1', 'localhost') ?? '';
    // The same certificate rules over MQTT/TLS and over secure WebSockets.
    for (const url of [local('mqtts:'), local('wss:')]) {
      const peer = await connectPeer(url, {
        mqtt5: false,
        clientId: 'thing-cli',
        ca: ca.ca,
        cert: device.cert,
        key: device.key,
      });
      await peer.close();
      await expect(connectPeer(url, { mqtt5: false, ca: ca.ca })).rejects.toThrow();
    }
    expect((await broker.stop()).code).toBe(0);
  });

  it('refuses --ca without a server certificate, in one line', async () => {
    const { code, stderr } = await runCli(['broker', '--ca', 'ca.crt']);
    expect(code).toBe(1);
    expect(stderr.trim()).toMatch(/^outpost: --ca .*--tls-cert.* \[INVALID_ARGUMENT\]$/);
  });
});
