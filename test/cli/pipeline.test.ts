import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderTextImage } from '../../bench/pipeline/text-images.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const CLI_TIMEOUT_MS = 120_000; // ms: three CLI processes through tsx, each loading both OCR models

describe('outpost pipeline build, inspect, run', () => {
  it(
    'builds examples/ocr, inspects its steps and runs a rendered page to its text lines',
    async () => {
      const dir = await tmpDir();
      const out = join(dir, 'ocr');
      const build = await runCli([
        'pipeline',
        'build',
        'examples/ocr/pipeline.json',
        '--target',
        'host',
        '-o',
        out,
        '--json',
      ]);
      expect(build.code, build.stderr).toBe(0);
      expect(JSON.parse(build.stdout)).toMatchObject({
        name: 'ocr',
        steps: ['decode', 'prepare', 'det', 'boxes', 'crop', 'rec', 'ctc'],
      });
      const again = await runCli(['pipeline', 'build', 'examples/ocr/pipeline.json', '-o', out]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/\[OUTPUT_UNWRITABLE\]/);
      const inspect = await runCli(['inspect', out, '--json']);
      expect(JSON.parse(inspect.stdout)).toMatchObject({
        kind: 'artifact',
        cascade: { models: { det: { dir: 'models/det' } } },
      });
      const { png, lines } = await renderTextImage(3);
      const image = join(dir, 'page.png');
      await writeFile(image, png);
      const run = await runCli(['run', out, '--input', image, '--json']);
      expect(run.code, run.stderr).toBe(0);
      const result = JSON.parse(run.stdout) as {
        outputs: { text: { datatype: string; data: string[] } };
        steps_ms: Record<string, number>;
      };
      expect(result.outputs.text.datatype).toBe('BYTES');
      expect(result.outputs.text.data).toHaveLength(lines.length);
      expect(Object.keys(result.steps_ms)).toContain('rec');
    },
    CLI_TIMEOUT_MS,
  );
});
