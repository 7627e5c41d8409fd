import type { Command } from 'commander';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '../../compiler/index.js';
import { Agent, parseAgentConfig } from '../../device-agent/index.js';
import { startEmbeddedBroker, deploy } from '../../fleet/index.js';
import { buildSamples } from '../../models/index.js';
import { generateSigningKeys } from '../../runtime/artifact/index.js';
import { setLogLevel } from '../../runtime/log.js';
import { cliFlags } from '../context.js';
import { formatBytes, print } from '../output.js';
import { demoFleet } from './demo-fleet.js';

const THING = 'demo-device';
const DEPLOY_TIMEOUT_MS = 120_000; // ms

/** Seconds since `started`, for the step log. */
function since(started: number): string {
  return `${((performance.now() - started) / 1000).toFixed(2)} s`.padStart(8);
}

async function infer(http: string): Promise<{ version: string; answer: number; ms: number }> {
  const image = Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i / 50) * 0.5 + 0.5);
  const started = performance.now();
  const response = await fetch(`${http}/v2/models/cnn/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: [{ name: 'image', shape: [1, 3, 64, 64], datatype: 'FP32', data: image }] }),
  });
  const body = (await response.json()) as { model_version: string; outputs: { data: number[] }[] };
  const logits = body.outputs[0]?.data ?? [];
  return { version: body.model_version, answer: logits.indexOf(Math.max(...logits)), ms: performance.now() - started };
}

/**
 * The whole loop on this machine, no infrastructure: compile a sample model into two signed artifact versions,
 * start the embedded MQTT broker and a device agent, deploy each version over AWS IoT's Jobs and file-delivery
 * protocols, and ask the agent's local endpoint after each; then the same agent among simulated devices under the
 * fleet service, with two rollouts in waves (demo-fleet.ts).
 */
async function demo(): Promise<void> {
  // The demo narrates on stdout what the warnings would say (the abort it provokes, MQTT 3.1.1 on the embedded
  // broker): keep stderr for real trouble unless --verbose asks for everything.
  if (!cliFlags().verbose) setLogLevel('error');
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'outpost-demo-'));
  const step = (text: string) => print(`${since(started)}  ${text}`);
  const broker = await startEmbeddedBroker({ port: 0 });
  let agent: Agent | undefined;
  try {
    step(`working in ${dir}`);
    const { cnn } = await buildSamples(join(dir, 'models'));
    const keys = generateSigningKeys();
    const publicKey = join(dir, 'outpost.pub');
    await writeFile(publicKey, keys.publicKeyPem);
    step(`built the sample CNN (fixed seed) and an ed25519 signing key ${keys.keyId}`);

    const artifacts: string[] = [];
    for (const version of ['1.0.0', '1.1.0']) {
      const out = join(dir, `cnn-${version}`);
      const report = await compile({
        model: cnn,
        target: 'host',
        output: out,
        name: 'cnn',
        version,
        signKey: keys.privateKeyPem,
      });
      artifacts.push(out);
      const variants = report.variants.map(
        (v) =>
          `${v.id} ${formatBytes(v.bytes)} cosine ${v.accuracy?.cosine.toFixed(4) ?? 'not graded'} p50 ${v.latency_p50_ms?.toFixed(3) ?? '?'} ms`,
      );
      step(`compiled cnn@${version} for ${report.target}: ${variants.join('; ')}`);
    }

    step(`embedded MQTT broker on ${broker.url}`);
    const agentConfig = parseAgentConfig({
      thing: THING,
      broker: { url: broker.url },
      dataDir: join(dir, 'device'),
      trustKeys: [publicKey],
      http: { host: '127.0.0.1', port: 0 },
    });
    agent = new Agent({ config: agentConfig });
    const { http } = await agent.start();
    step(`agent "${THING}" started: no models yet, local endpoint ${http}`);

    for (const artifact of artifacts) {
      const deployed = performance.now();
      const result = await deploy({
        artifact,
        things: [THING],
        brokerUrl: broker.url,
        trustedKeys: [publicKey],
        wait: true,
        timeoutMs: DEPLOY_TIMEOUT_MS,
        onEvent: (event) => {
          if (event.type === 'execution') step(`  job ${event.jobId} on ${event.thing}: ${event.status}`);
        },
      });
      const outcome = result.things[0];
      const details = outcome?.statusDetails ?? {};
      step(
        `deployed ${artifact.split('/').pop() ?? ''}: ${outcome?.status ?? '?'} in ${((performance.now() - deployed) / 1000).toFixed(2)} s (variant ${details.variant ?? '?'} on ${details.backend ?? '?'}, ${details.bytesFetched ?? '?'} bytes fetched)`,
      );
      const answer = await infer(http);
      step(
        `POST ${http}/v2/models/cnn/infer → version ${answer.version}, class ${answer.answer} (${answer.ms.toFixed(1)} ms over HTTP)`,
      );
    }
    const status = await agent.status();
    step(
      `agent status: ${status.active.map((a) => `${a.model}@${a.version} (${a.variant}, ${a.backend})`).join(', ')}; ${status.deployments.length} deployments, spool ${status.spool.entries}`,
    );
    const metrics = await (await fetch(`${http}/metrics`)).text();
    const calls = metrics
      .split('\n')
      .filter((line) => line.startsWith('outpost_inference_requests_total{'))
      .map((line) => `${/version="([^"]*)"/.exec(line)?.[1] ?? '?'}: ${line.split(' ').at(-1) ?? '?'}`);
    step(`GET ${http}/metrics → outpost_inference_requests_total by version: ${calls.join(', ')}`);

    // The same device in a small fleet: stopped here, started again by the fleet part once the service listens.
    await agent.stop();
    agent = undefined;
    print('');
    step('a small fleet: the fleet service, the same agent and simulated devices, rollouts in waves');
    await demoFleet({
      dir,
      brokerUrl: broker.url,
      model: cnn,
      signKey: keys.privateKeyPem,
      publicKey,
      agentConfig,
      step,
      infer,
    });
    print(
      '\nNext: `outpost compile --help`, `outpost agent --help`, `outpost deploy --help`, `outpost fleet --help`; see README.md and docs/rollouts.md.',
    );
  } finally {
    await agent?.stop();
    await broker.close();
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'the whole loop on this machine: compile → embedded broker + agent → deploy → infer → a small fleet rollout',
    )
    .action(demo);
}
