import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { AGENT_START_TIMEOUT_MS, startAgent, waitFor } from '../helpers/agent.js';
import { ROOT } from '../helpers/models.js';
import { agentArgs, signingKeys } from '../helpers/signed-artifacts.js';
import { suiteTmpDir } from '../helpers/tmp.js';

/**
 * The built agent (dist/, what a device runs) reaches the broker. tsup bundles MQTT.js, a CommonJS package, into
 * dist/, where its dynamic import has only a default export; from source it has named ones too. A bundling
 * change that breaks the transport shows here and nowhere else in the suite (benches aside), and so does a native
 * module loaded at start that only some models need.
 */
const BUILT = join(ROOT, 'dist', 'cli', 'main.js');

describe('the built agent', () => {
  let broker: TestBroker;
  let dir: string;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    ({ dir, dispose } = await suiteTmpDir('outpost-built-agent-'));
    broker = await startBroker();
  });
  afterAll(async () => {
    await broker.stop();
    await dispose();
  });

  it('connects to the broker over mTLS (MQTT.js bundled)', async (context) => {
    context.skip(!existsSync(BUILT), 'dist/ is not built (npm run build)');
    const keys = await signingKeys(dir, 'built');
    const agent = startAgent(await agentArgs(broker, 'built-1', keys.publicKeyPath), dir, {}, { built: true });
    try {
      const connected = await waitFor(
        async () => {
          const text = await readFile(join(dir, 'status.json'), 'utf8').catch(() => '{}');
          const status = JSON.parse(text) as { pid?: number; connected?: boolean };
          return status.pid === agent.child.pid && status.connected === true ? true : undefined;
        },
        AGENT_START_TIMEOUT_MS,
        () => `the built agent did not connect:\n${agent.logs()}`,
      );
      expect(connected).toBe(true);
      // Loaded only when used (docs/agent-footprint.md): no image decoded, MQTT.js transport — neither sharp's
      // libvips nor the AWS CRT is mapped. A static import of either on the start-up path costs 10–20 MB here.
      const maps = await readFile(`/proc/${String(agent.child.pid)}/maps`, 'utf8');
      expect(maps.split('\n').filter((l) => /libvips|sharp-|aws-crt/.test(l))).toEqual([]);
    } finally {
      await agent.stop();
    }
  });
});
