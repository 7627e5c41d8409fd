import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { deploy } from '../fleet/deploy.js';
import type { TestBroker } from '../test/helpers/broker.js';
import { deploymentState, startAgent } from '../test/helpers/agent.js';
import { agentArgs, fleetTls } from '../test/helpers/signed-artifacts.js';
import { agentHttp } from './agent-footprint.js';

const ENV = { OUTPOST_LOG_LEVEL: 'warn' };
export const LAYOUTS = ['files', 'archive'] as const;

export interface LayoutDeployment {
  readonly status: string;
  /** The variant the agent reported serving (a pipeline's is "pipeline"). */
  readonly variant: string;
  readonly bytesFetched: number;
}

/**
 * One fresh agent per stream layout (`bench-files`, `bench-archive` under `dir`), `artifact` deployed to each and
 * waited for: what each device fetched, as the delivery benches (variants.ts, pipeline-fetch.ts) compare them.
 */
export async function deployEachLayout(
  dir: string,
  broker: TestBroker,
  artifact: string,
  trustedKey: string,
): Promise<Record<(typeof LAYOUTS)[number], LayoutDeployment>> {
  const tls = await fleetTls(broker);
  const out: Partial<Record<(typeof LAYOUTS)[number], LayoutDeployment>> = {};
  for (const layout of LAYOUTS) {
    const thing = `bench-${layout}`;
    const data = join(dir, thing);
    await mkdir(data);
    const agent = startAgent(await agentArgs(broker, thing, trustedKey), data, ENV);
    try {
      await agentHttp(agent);
      const result = await deploy({ artifact, things: [thing], brokerUrl: broker.urls.mtls, tls, wait: true, layout });
      const state = await deploymentState(data, result.jobId);
      out[layout] = {
        status: result.things[0]?.status ?? '?',
        variant: result.things[0]?.statusDetails.variant ?? '?',
        bytesFetched: Number(state?.bytesFetched),
      };
    } finally {
      await agent.stop();
    }
  }
  return out as Record<(typeof LAYOUTS)[number], LayoutDeployment>;
}
