/**
 * Screenshots of the fleet dashboard's three pages, from the real page driven by a simulated fleet (the browser
 * tests' fleet: test/helpers/dashboard-fleet.ts): 1.0.0 everywhere, then a 2.0.0 canary that aborts and rolls back,
 * and the two scripted reporters of serving state (drift, a shadow, a guardrail watch: the simulated devices run no
 * model). Writes docs/dashboard-fleet.png (whole page), docs/dashboard-device.png (the drifting thing, whole page) and
 * docs/dashboard-deployment.png at 1280×800.
 *
 *   npx tsx scripts/dashboard-screenshots.ts
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import {
  CHROMIUM,
  CHROMIUM_ARGS,
  DRIFTING,
  TOKEN,
  V2,
  abortedAndRolledBack,
  buildDashboardScript,
  deployV1,
  deployV2,
  reportServingState,
  startDashboardFleet,
} from '../test/helpers/dashboard-fleet.js';

const ROOT = join(import.meta.dirname, '..');
const SITES = ['plant-3', 'plant-3', 'depot-north']; // attributes, so the pages look like a site's fleet

async function main(): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  const dir = await mkdtemp(join(tmpdir(), 'outpost-screenshots-'));
  const fleet = await startDashboardFleet(dir, await buildDashboardScript(join(dir, 'ui')));
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS] });
  try {
    for (const [i, thing] of fleet.things.entries())
      await fleet.api('PUT', `/v1/things/${thing}/attributes`, { attributes: { site: SITES[i % SITES.length] ?? '' } });
    console.error('deploying 1.0.0 everywhere, then the 2.0.0 canary that aborts…');
    await deployV1(fleet);
    await deployV2(fleet);
    await abortedAndRolledBack(fleet);
    await reportServingState(fleet);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${fleet.fleet.url}/ui/login`);
    await page.fill('#token', TOKEN);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#things');
    const shots: Array<readonly [string, string, boolean]> = [
      ['dashboard-fleet.png', '/', true],
      ['dashboard-device.png', `/ui/things/${DRIFTING}`, true],
      ['dashboard-deployment.png', `/ui/deployments/${V2.id}`, false],
    ];
    for (const [file, path, fullPage] of shots) {
      await page.goto(`${fleet.fleet.url}${path}`);
      await page.waitForSelector('#live[data-state="open"]');
      await page.screenshot({ path: join(ROOT, 'docs', file), fullPage });
      console.error(`wrote docs/${file} (${path})`);
    }
  } finally {
    await browser.close();
    await fleet.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
