import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildPipeline } from '../../../compiler/index.js';
import { openPipeline, type Pipeline } from '../../../runtime/pipeline/index.js';
import { InferenceServer, ServerMetrics, StaticPipelines, StaticRepository } from '../../../runtime/server/index.js';
import { ShadowStats } from '../../../runtime/server/serving/shadow.js';
import { call, json } from '../../helpers/http-client.js';
import { ROOT } from '../../helpers/models.js';
import { suiteTmpDir } from '../../helpers/tmp.js';
import { allRecords, writer } from './capture-fixtures.js';

const BUILD_TIMEOUT_MS = 180_000; // ms: two builds of the OCR example, each bundling both PP-OCRv4 models
const TEST_TIMEOUT_MS = 120_000; // ms: a few one-line pages through det + rec on 2 shared cores
const SHADOW_WAIT_MS = 60_000; // ms for the mirrored run to finish after production answered

interface Answer {
  model_version: string;
  outputs: { name: string; datatype: string; data: unknown[] }[];
}
const textOf = (a: Answer) => a.outputs.find((o) => o.name === 'text')?.data;

/** A page with one short line: one crop, so each request is one det and one small rec run. */
async function onePage(text: string): Promise<Buffer> {
  const svg =
    '<svg xmlns="http://www.w3.org/2000/svg" width="360" height="72"><rect width="360" height="72" fill="#f4f2ec"/>' +
    `<text x="16" y="46" font-family="DejaVu Sans" font-size="30" fill="#111">${text}</text></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** A scripted source of randomness: the traffic split and shadow sampling draw exactly these, in order. */
function scripted(...draws: number[]): () => number {
  return () => draws.shift() ?? 0;
}

const image = { 'content-type': 'image/png' };

/**
 * Serving at pipeline level (issue 17, item 3) with the real OCR pipeline in two versions (1.0.0 and 1.1.0, whose
 * box unclip ratio differs): a weighted split (canary) and named versions, a shadow compared on BYTES `text` by
 * exact match, and data capture of the pipeline's input (the image bytes) and final outputs.
 */
describe('pipeline serving: canary, shadow, capture', () => {
  let tmp: { dir: string; dispose: () => Promise<void> };
  let v1: Pipeline;
  let v2: Pipeline;
  let page: Buffer;

  beforeAll(async () => {
    tmp = await suiteTmpDir('outpost-pipeline-serving-');
    const example = join(ROOT, 'examples', 'ocr', 'pipeline.json');
    const source = JSON.parse(await readFile(example, 'utf8')) as {
      version: string;
      steps: { id: string; params?: Record<string, unknown> }[];
    };
    source.version = '1.1.0';
    const boxes = source.steps.find((s) => s.id === 'boxes');
    if (boxes?.params !== undefined) boxes.params.unclipRatio = 1.5;
    const next = join(ROOT, 'examples', 'ocr', `.serving-${process.pid}.json`);
    await writeFile(next, JSON.stringify(source));
    try {
      await buildPipeline({ source: example, target: 'host', output: join(tmp.dir, 'v1') });
      await buildPipeline({ source: next, target: 'host', output: join(tmp.dir, 'v2') });
    } finally {
      await import('node:fs/promises').then((fs) => fs.rm(next, { force: true }));
    }
    v1 = await openPipeline(join(tmp.dir, 'v1'));
    v2 = await openPipeline(join(tmp.dir, 'v2'));
    page = await onePage('TOTAL 42.50 EUR');
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await v1.release();
    await v2.release();
    await tmp.dispose();
  });

  async function serving(pipelines: StaticPipelines, run: (url: string) => Promise<void>): Promise<void> {
    const metrics = new ServerMetrics();
    metrics.pipelines.watch(() => pipelines.services());
    const server = new InferenceServer({
      repository: new StaticRepository(),
      port: 0,
      pipelines,
      pipelineMetrics: metrics.pipelines,
      metrics: () => metrics.text(),
    });
    const { url } = await server.listen();
    try {
      await run(url);
    } finally {
      await server.close();
    }
  }

  it(
    'splits unnamed calls by weight, answers a named version, and captures each production call',
    async () => {
      const dir = join(tmp.dir, 'capture');
      const capture = writer(dir);
      // Weights 3 : 1 → draws below 0.75 go to 1.0.0, above to the canary.
      const pipelines = new StaticPipelines({ observers: [capture.observer], random: scripted(0.5, 0.9) });
      pipelines.add(v1, 3).add(v2, 1);
      expect(pipelines.get('ocr')?.weights()).toEqual([3, 1]);
      const answers: Answer[] = [];
      await serving(pipelines, async (url) => {
        for (let i = 0; i < 2; i++) {
          const reply = await call(url, '/v2/models/ocr/infer', { body: page, headers: image });
          expect(reply.status).toBe(200);
          answers.push(json(reply) as unknown as Answer);
        }
        const named = await call(url, '/v2/models/ocr/versions/1.0.0/infer', { body: page, headers: image });
        answers.push(json(named) as unknown as Answer);
        const missing = await call(url, '/v2/models/ocr/versions/9.9.9/infer', { body: page, headers: image });
        expect(missing.status).toBe(404);
        expect(json(missing)).toMatchObject({ code: 'MODEL_NOT_FOUND' });
        expect(json(missing).error).toMatch(/versions: 1\.0\.0, 1\.1\.0/);
        expect(json(await call(url, '/v2/models/ocr'))).toMatchObject({ versions: ['1.0.0', '1.1.0'] });
      });
      expect(answers.map((a) => a.model_version)).toEqual(['1.0.0', '1.1.0', '1.0.0']);
      expect(textOf(answers[0] as Answer)).toEqual(textOf(answers[2] as Answer));
      expect(textOf(answers[0] as Answer)).toEqual([expect.stringMatching(/^TOTAL 42\.50 ?EUR$/)]);
      await capture.close();

      const records = await allRecords(dir);
      expect(records.map((r) => [r.model, r.version])).toEqual([
        ['ocr', '1.0.0'],
        ['ocr', '1.1.0'],
        ['ocr', '1.0.0'],
      ]);
      const [first] = records;
      expect(first?.inputs.image).toMatchObject({ datatype: 'UINT8', shape: [page.length] });
      expect(Buffer.from(first?.inputs.image?.data ?? '', 'base64').equals(page)).toBe(true);
      expect(first?.outputs.text).toMatchObject({ datatype: 'BYTES', values: textOf(answers[0] as Answer) });
      expect(Object.keys(first?.outputs ?? {}).sort()).toEqual(['box_scores', 'boxes', 'scores', 'text']);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'mirrors to a shadow version after production answered and grades its text by exact match',
    async () => {
      const pipelines = new StaticPipelines({ random: scripted(0) });
      pipelines.add(v1).addShadow(v2, 100);
      const service = pipelines.get('ocr');
      let answer: Answer | undefined;
      let shadowAnswer: Answer | undefined;
      await serving(pipelines, async (url) => {
        const reply = await call(url, '/v2/models/ocr/infer', { body: page, headers: image });
        answer = json(reply) as unknown as Answer;
        await vi.waitFor(() => expect(service?.shadowReport()?.compared).toBe(1), { timeout: SHADOW_WAIT_MS });
        // The shadow answers only when named; a named call is not mirrored.
        const named = await call(url, '/v2/models/ocr/versions/1.1.0/infer', { body: page, headers: image });
        shadowAnswer = json(named) as unknown as Answer;
        const text = (await call(url, '/metrics')).body.toString('utf8');
        expect(text).toMatch(/outpost_pipeline_shadow_compared\{pipeline="ocr",version="1\.1\.0"\} 1/);
        expect(text).toMatch(/outpost_pipeline_shadow_exact_match_ratio\{pipeline="ocr",version="1\.1\.0"\} [01]/);
        expect(text).toMatch(/outpost_pipeline_requests_total\{pipeline="ocr",version="1\.1\.0"\} 1/);
      });
      expect(answer?.model_version).toBe('1.0.0');
      expect(shadowAnswer?.model_version).toBe('1.1.0');
      const report = service?.shadowReport();
      const same = JSON.stringify(textOf(answer as Answer)) === JSON.stringify(textOf(shadowAnswer as Answer));
      expect(report).toMatchObject({ version: '1.1.0', percent: 100, compared: 1, shadowErrors: 0 });
      expect(report?.exactMatch).toBe(same ? 1 : 0);
      // Numeric outputs (boxes, scores) are compared as for models: cosine over them.
      expect(report?.meanCosine).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );
});

describe('ShadowStats on string outputs', () => {
  it('counts exact matches of BYTES outputs, element by element in order, and keeps them out of cosine', () => {
    const stats = new ShadowStats('2', 100);
    const text = (...lines: string[]) => ({ type: 'string' as const, dims: [lines.length], data: lines });
    const scores = { type: 'float32' as const, dims: [2], data: Float32Array.of(0.5, 0.25) };
    stats.record({ text: text('a b', 'c'), scores }, { text: text('a b', 'c'), scores }, 1, 1);
    stats.record({ text: text('a b', 'c') }, { text: text('ab', 'c') }, 1, 1);
    stats.record({ text: text('a', 'c') }, { text: text('c', 'a') }, 1, 1);
    stats.record({ text: text('a') }, {}, 1, 1);
    const report = stats.report();
    expect(report.exactMatch).toBe(0.25);
    expect(report.meanCosine).toBe(1); // the one numeric output compared, identical
    expect(report.maxAbsDiff).toBe(0);
    expect(new ShadowStats('2', 100).report().exactMatch).toBeUndefined();
  });
});
