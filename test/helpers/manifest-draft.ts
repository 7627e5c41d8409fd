import type { ManifestDraft, VariantDraft } from '../../runtime/artifact/index.js';

/** What a test artifact's manifest must say; everything else has a default. */
export type ManifestDraftInput = Pick<ManifestDraft, 'name' | 'inputs' | 'outputs'> & Partial<ManifestDraft>;

/** One fp32 ONNX variant of `file` for both backends, rank 1: what most test artifacts carry. */
export function fp32Variant(file: string, overrides: Partial<VariantDraft> = {}): VariantDraft {
  return { id: 'fp32', file, precision: 'fp32', format: 'onnx', backends: ['native', 'wasm'], rank: 1, ...overrides };
}

/**
 * A manifest draft for `writeArtifact`, the one builder the tests share: version "1", target `any`, producer
 * `test` and one fp32 variant `variants/<name>.onnx` unless `draft` says otherwise.
 */
export function manifestDraft(draft: ManifestDraftInput): ManifestDraft {
  return {
    version: '1',
    target: { profile: 'any', arch: 'any' },
    variants: [fp32Variant(`variants/${draft.name}.onnx`)],
    producer: { outpost: 'test' },
    ...draft,
  };
}
