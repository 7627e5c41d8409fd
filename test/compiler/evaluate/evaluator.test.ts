import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Evaluator } from '../../../compiler/evaluate/evaluator.js';
import { loopModel, tileModel } from '../../helpers/runaway-models.js';
import { tmpDir } from '../../helpers/tmp.js';

const BUDGET_S = 2; // s per run: the small draws below take well under a millisecond

const loopFeeds = (m: bigint) => ({
  M: { data: BigInt64Array.from([m]), dims: [], type: 'int64' as const },
  v: { data: Float32Array.from([0.1, 0.2, 0.3, 0.4]), dims: [4] },
});

describe('Evaluator: every run in a separate process, held to a time and memory budget', () => {
  it('grades a model against its reference, then kills a run past its time budget and names the input', async () => {
    const dir = await tmpDir();
    const model = await loopModel(dir);
    const evaluator = new Evaluator({ budget: { seconds: BUDGET_S, memoryBytes: 4 * 2 ** 30 } });
    try {
      const ref = await evaluator.reference(model, [loopFeeds(3n), loopFeeds(5n)]);
      expect(ref.outputs).toHaveLength(2);
      expect((await evaluator.accuracy(model, ref)).cosine).toBe(1);

      await expect(
        evaluator.reference(model, [loopFeeds(3n), loopFeeds(10n ** 15n)], { stage: 'grade fp32' }),
      ).rejects.toMatchObject({
        code: 'EVALUATION_BUDGET_EXCEEDED',
        message: expect.stringMatching(
          /^grade fp32: loop\.onnx ran past its 2 s budget on sample 1 \(M = \[1000000000000000\]/,
        ) as unknown,
      });

      // The next job runs in a fresh process, which gets the earlier reference back without re-running it.
      expect((await evaluator.accuracy(model, ref)).cosine).toBe(1);
    } finally {
      evaluator.close();
    }
  });

  it.skipIf(!existsSync('/proc/self/status'))('kills a run past its memory budget (Linux: /proc)', async () => {
    const dir = await tmpDir();
    const model = await tileModel(dir);
    const evaluator = new Evaluator({ budget: { seconds: 60, memoryBytes: 256 * 2 ** 20 } });
    try {
      const tile = (n: bigint) => ({
        x: { data: Float32Array.from([1, 2, 3, 4]), dims: [4] },
        repeats: { data: BigInt64Array.from([n]), dims: [1], type: 'int64' as const },
      });
      expect(await evaluator.probe(model, [tile(2n)])).toEqual([{ ok: true }]);
      await expect(evaluator.probe(model, [tile(2n), tile(50_000_000n)])).rejects.toMatchObject({
        code: 'EVALUATION_BUDGET_EXCEEDED',
        message: expect.stringMatching(
          /tile\.onnx reached \d+ MiB of memory, past its 256 MiB budget, on sample 1 \(x \[4\] float32, repeats = \[50000000\]\)/,
        ) as unknown,
      });
    } finally {
      evaluator.close();
    }
  });

  it('reports a run the model rejects as a failed probe, not a crash', async () => {
    const dir = await tmpDir();
    const model = await tileModel(dir);
    const evaluator = new Evaluator();
    try {
      const [result] = await evaluator.probe(model, [
        {
          x: { data: Float32Array.from([1, 2, 3, 4]), dims: [4] },
          repeats: { data: BigInt64Array.from([-1n]), dims: [1], type: 'int64' },
        },
      ]);
      expect(result?.ok).toBe(false);
    } finally {
      evaluator.close();
    }
  });
});
