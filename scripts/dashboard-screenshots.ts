/**
 * Screenshots of the fleet dashboard's three pages, from the real page driven by a simulated fleet (the browser
 * tests' fleet: test/helpers/dashboard-fleet.ts): 1.0.0 everywhere, then a 2.0.0 canary that aborts and rolls back.
 * Writes docs/dashboard-fleet.png, docs/dashboard-device.png and docs/dashboard-deployment.png at 1280×800.
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
  TOKEN,
  V2,
  abortedAndRolledBack,
  buildDashboardScript,
  deployV1,
  deployV2,
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
    const d = await abortedAndRolledBack(fleet);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${fleet.fleet.url}/ui/login`);
    await page.fill('#token', TOKEN);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#things');
    const shots: Array<readonly [string, string]> = [
      ['dashboard-fleet.png', '/'],
      ['dashboard-device.png', `/ui/things/${d.rollout?.rolledBack[0] ?? fleet.things[0] ?? ''}`],
      ['dashboard-deployment.png', `/ui/deployments/${V2.id}`],
    ];
    for (const [file, path] of shots) {
      await page.goto(`${fleet.fleet.url}${path}`);
      await page.waitForSelector('#live[data-state="open"]');
      await page.screenshot({ path: join(ROOT, 'docs', file), fullPage: false });
      console.error(`wrote docs/${file} (${path})`);
    }
  } finally {
    await browser.close();
    await fleet.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
