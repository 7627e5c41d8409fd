import { describe, expect, it } from 'vitest';
import { cascadeSchema, type TensorSpec } from '../../../runtime/artifact/index.js';
import { isOutpostError } from '../../../runtime/errors.js';
import { planPipeline, type ModelSignature } from '../../../runtime/pipeline/index.js';

/** The OCR pipeline's shape, with the PP-OCRv4 models' real signatures (as ONNX Runtime reports them). */
const INPUTS: TensorSpec[] = [{ name: 'image', dtype: 'uint8', shape: ['bytes'] }];
const MODELS: Record<string, ModelSignature> = {
  det: {
    inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 3, 'h', 'w'] }],
    outputs: [{ name: 'sigmoid_0.tmp_0', dtype: 'float32', shape: ['n', 1, 'h', 'w'] }],
  },
  rec: {
    inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 3, 48, 'w'] }],
    outputs: [{ name: 'softmax_11.tmp_0', dtype: 'float32', shape: ['n', 't', 6625] }],
  },
};

function steps(): Record<string, unknown>[] {
  return [
    { id: 'decode', transform: 'image-decode', inputs: { bytes: 'inputs.image' } },
    { id: 'prepare', transform: 'image-tensor', inputs: { image: 'decode.image' } },
    { id: 'det', model: 'det', inputs: { x: 'prepare.tensor' } },
    { id: 'boxes', transform: 'mask-to-boxes', inputs: { mask: 'det.sigmoid_0.tmp_0', image: 'decode.image' } },
    { id: 'crop', transform: 'crop', inputs: { image: 'decode.image', boxes: 'boxes.boxes' } },
    { id: 'rec', model: 'rec', batch: 8, inputs: { x: 'crop.crops' } },
    { id: 'ctc', transform: 'ctc-decode', params: { labels: 'keys.txt' }, inputs: { probs: 'rec.softmax_11.tmp_0' } },
  ];
}

function plan(edit: (s: Record<string, unknown>[]) => void = () => undefined, models = MODELS) {
  const s = steps();
  edit(s);
  const cascade = cascadeSchema.parse({ steps: s, outputs: { text: 'ctc.text', boxes: 'boxes.boxes' } });
  return planPipeline(cascade, INPUTS, models);
}

function failure(fn: () => unknown): { code: string; message: string; details: Record<string, unknown> } {
  try {
    fn();
  } catch (error) {
    if (isOutpostError(error)) return { code: error.code, message: error.message, details: { ...error.details } };
    throw error;
  }
  throw new Error('expected a failure');
}

const step = (s: Record<string, unknown>[], id: string) => s.find((x) => x.id === id) as Record<string, unknown>;

describe('planPipeline', () => {
  it('orders the OCR steps and derives the outputs (listed in any order)', () => {
    const p = plan((s) => s.reverse());
    expect(p.steps.map((x) => x.step.id)).toEqual(['decode', 'prepare', 'det', 'boxes', 'crop', 'rec', 'ctc']);
    expect(p.outputs).toEqual([
      { name: 'text', dtype: 'string', shape: ['n'] },
      { name: 'boxes', dtype: 'float32', shape: ['boxes', 4, 2] },
    ]);
  });

  it('a cycle is PIPELINE_INVALID naming its steps', () => {
    const f = failure(() => plan((s) => (step(s, 'prepare').inputs = { image: 'crop.crops' })));
    expect(f.code).toBe('PIPELINE_INVALID');
    expect(f.message).toMatch(/cycle/);
    expect(f.details.steps).toEqual(expect.arrayContaining(['prepare', 'det', 'boxes', 'crop']));
  });

  it('a model the pipeline does not provide is PIPELINE_MODEL_MISSING naming the step', () => {
    const withoutRec = Object.fromEntries(Object.entries(MODELS).filter(([key]) => key !== 'rec'));
    const f = failure(() => plan(undefined, withoutRec));
    expect(f).toMatchObject({ code: 'PIPELINE_MODEL_MISSING', details: { step: 'rec', model: 'rec' } });
  });

  it('a dtype or shape that does not fit a mapping is PIPELINE_MAPPING_MISMATCH naming step and tensor', () => {
    const dtype = failure(() => plan((s) => (step(s, 'det').inputs = { x: 'decode.image' })));
    expect(dtype).toMatchObject({ code: 'PIPELINE_MAPPING_MISMATCH', details: { step: 'det', tensor: 'x' } });
    expect(dtype.message).toMatch(/dtype uint8, expected float32/);
    const height = failure(() => plan((s) => (step(s, 'crop').params = { height: 32 })));
    expect(height).toMatchObject({ code: 'PIPELINE_MAPPING_MISMATCH', details: { step: 'rec', tensor: 'x' } });
    expect(height.message).toMatch(/axis 2: 32 ≠ 48/);
    const rank = failure(() => plan((s) => (step(s, 'ctc').inputs = { probs: 'boxes.scores' })));
    expect(rank).toMatchObject({ code: 'PIPELINE_MAPPING_MISMATCH', details: { step: 'ctc', tensor: 'probs' } });
  });

  it('a parameter out of range is TRANSFORM_PARAM_INVALID naming the step and parameter', () => {
    const f = failure(() => plan((s) => (step(s, 'boxes').params = { threshold: 2 })));
    expect(f).toMatchObject({ code: 'TRANSFORM_PARAM_INVALID', details: { step: 'boxes', param: 'threshold' } });
  });

  it('unknown transforms, steps, tensors and inputs are PIPELINE_INVALID', () => {
    expect(failure(() => plan((s) => (step(s, 'boxes').transform = 'boxify'))).message).toMatch(
      /unknown transform "boxify"; built in: image-decode/,
    );
    expect(
      failure(() => plan((s) => (step(s, 'crop').inputs = { image: 'nope.image', boxes: 'boxes.boxes' }))).details,
    ).toMatchObject({ step: 'crop', tensor: 'image' });
    expect(failure(() => plan((s) => (step(s, 'ctc').inputs = { probs: 'rec.logits' }))).message).toMatch(
      /"rec" does not produce/,
    );
    expect(failure(() => plan((s) => (step(s, 'crop').inputs = { image: 'decode.image' }))).message).toMatch(
      /needs input "boxes"/,
    );
  });
});
