import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Evaluator } from '../../compiler/evaluate/evaluator.js';
import { TESTDATA_ROOT, runCase } from '../../bench/conformance/cases.js';

/**
 * A fast slice of `npx tsx bench/conformance/conformance.ts` (README, "ONNX conformance"): ONNX backend tests from Debian's
 * libonnx-testdata that raw onnxruntime-node passes, through `compile --target host --precision fp32`, then raw ORT
 * on the compiled variant against the expected outputs. One or more per way compiles used to fail: synthetic inputs
 * the op rejects (Dropout ratio, Expand, MelWeightMatrix, Pad, Split), NaN on both sides (Acosh, Log, Sqrt,
 * BatchNormalization), integer division by zero, a run without end (Tile, TopK, ConstantOfShape, NonZero), no
 * inputs (Constant), string tensors; plus the integer roles the synthetic draws respect (indices, shapes, axes).
 */
const SLICE: readonly string[] = [
  'node/test_dropout_default_ratio',
  'node/test_dropout_default_mask_ratio',
  'node/test_expand_dim_changed',
  'node/test_expand_dim_unchanged',
  'node/test_melweightmatrix',
  'node/test_reflect_pad',
  'node/test_split_equal_parts_1d',
  'simple/test_sequence_model8',
  'node/test_acosh',
  'node/test_log',
  'node/test_sqrt',
  'node/test_batchnorm_example',
  'node/test_div_uint8',
  'node/test_mod_int64_fmod',
  'node/test_mod_uint8',
  'node/test_tile_precomputed',
  'node/test_top_k',
  'node/test_constantofshape_int_zeros',
  'node/test_nonzero_example',
  'node/test_range_int32_type_negative_delta',
  'node/test_constant',
  'node/test_cast_STRING_to_FLOAT',
  'node/test_strnormalizer_nostopwords_nochangecase',
  'node/test_gather_0',
  'node/test_gathernd_example_int32',
  'node/test_scatter_elements_with_axis',
  'node/test_onehot_with_axis',
  'node/test_reshape_extended_dims',
  'node/test_slice',
  'node/test_resize_upsample_sizes_nearest',
  'node/test_cumsum_1d',
  'node/test_tril',
  'node/test_nonmaxsuppression_center_point_box_format',
  'node/test_hannwindow',
  'node/test_onehot_negative_indices',
  'node/test_where_example',
  'node/test_compress_0',
  'pytorch-converted/test_Conv2d',
  'pytorch-operator/test_operator_view',
];

const BUDGET_S = 20; // s per model run, as the full conformance run uses
const installed = existsSync(TESTDATA_ROOT);
let evaluator: Evaluator;
beforeAll(() => {
  evaluator = new Evaluator({ budget: { seconds: BUDGET_S, memoryBytes: 4 * 2 ** 30 } });
});
afterAll(() => evaluator.close());

describe('ONNX backend tests through compile --target host --precision fp32 (fast slice)', () => {
  it.for(SLICE)('%s compiles and matches the expected outputs', async (test, context) => {
    context.skip(!installed, `ONNX backend test data not installed at ${TESTDATA_ROOT} (Debian: libonnx-testdata)`);
    const [family = '', name = ''] = test.split('/');
    const dir = join(TESTDATA_ROOT, family, name);
    context.skip(!existsSync(dir), `${test} is not in this libonnx-testdata version`);
    const outcome = await runCase({ family, name, dir }, { budgetSeconds: BUDGET_S, evaluator });
    expect(outcome.kind, JSON.stringify(outcome)).toBe('match');
  });
});
