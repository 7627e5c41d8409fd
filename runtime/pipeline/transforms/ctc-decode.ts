import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import { OutpostError, fromFsError } from '../../errors.js';
import { relativePathSchema, type TensorSpec } from '../../artifact/manifest.js';
import { tensor, type TransformDef } from './types.js';

/**
 * Greedy CTC decoding (Graves et al. 2006, best path): per time step the most likely class; repeats collapsed,
 * blanks dropped; the score is the mean probability of the classes kept (PaddleOCR's `CTCLabelDecode`, whose
 * class table is the blank, then one class per line of the key file, then a space when `use_space_char`).
 */
export const ctcDecodeParams = z
  .object({
    /** The key file, bundled in the pipeline artifact: one character (or token) per line. */
    labels: relativePathSchema,
    /** Where the blank class sits: before the labels (PaddleOCR, most CTC heads) or after them. */
    blank: z.enum(['first', 'last']).default('first'),
    /** A space class after the labels (PaddleOCR's `use_space_char`). */
    space: z.boolean().default(false),
  })
  .strict();
export type CtcDecodeParams = z.infer<typeof ctcDecodeParams>;

/** The class table: index → text ('' for the blank). */
export function ctcClasses(lines: readonly string[], params: Pick<CtcDecodeParams, 'blank' | 'space'>): string[] {
  const labels = params.space ? [...lines, ' '] : [...lines];
  return params.blank === 'first' ? ['', ...labels] : [...labels, ''];
}

/** Decodes `probs` ([N, T, C]) into N strings and their scores. */
export function ctcDecode(
  probs: Float32Array,
  dims: readonly number[],
  classes: readonly string[],
  blank: number,
): { text: string[]; scores: Float32Array } {
  const [n = 0, steps = 0, width = 0] = dims;
  if (dims.length !== 3 || width !== classes.length) {
    throw new OutpostError(
      'INPUT_SHAPE_MISMATCH',
      `ctc-decode: probabilities of shape [${dims.join(', ')}]; expected [N, T, ${classes.length}] (the key file's classes)`,
      { details: { dims, classes: classes.length } },
    );
  }
  const text: string[] = [];
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let out = '';
    let sum = 0;
    let kept = 0;
    let previous = -1;
    for (let t = 0; t < steps; t++) {
      const row = (i * steps + t) * width;
      let best = 0;
      let bestP = probs[row] ?? -Infinity;
      for (let c = 1; c < width; c++) {
        const p = probs[row + c] ?? -Infinity;
        if (p > bestP) {
          bestP = p;
          best = c;
        }
      }
      if (best !== blank && best !== previous) {
        out += classes[best] ?? '';
        sum += bestP;
        kept++;
      }
      previous = best;
    }
    text.push(out);
    scores[i] = kept === 0 ? 0 : sum / kept;
  }
  return { text, scores };
}

async function readLabels(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw fromFsError(error, path, 'read');
  });
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export const ctcDecodeTransform: TransformDef<CtcDecodeParams> = {
  op: 'ctc-decode',
  summary: 'CTC probabilities [N, T, C] → text [N] (BYTES) and scores [N], greedy, with a key file',
  params: ctcDecodeParams,
  inputs: [{ name: 'probs', dtypes: ['float32'], rank: 3 }],
  outputs: (_params, inputs): TensorSpec[] => {
    const n = inputs.probs?.shape[0] ?? 'items';
    return [
      { name: 'text', dtype: 'string', shape: [n] },
      { name: 'scores', dtype: 'float32', shape: [n] },
    ];
  },
  prepare: async (params, context) => {
    const classes = ctcClasses(await readLabels(context.file(params.labels)), params);
    const blank = params.blank === 'first' ? 0 : classes.length - 1;
    return (inputs) => {
      const probs = inputs.probs;
      if (probs === undefined) throw new OutpostError('INPUT_MISSING', 'ctc-decode: no probabilities');
      const { text, scores } = ctcDecode(probs.data as Float32Array, probs.dims, classes, blank);
      return {
        text: tensor('string', text, [text.length]),
        scores: tensor('float32', scores, [scores.length]),
      };
    };
  },
};
