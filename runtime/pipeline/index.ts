/** Pre- and post-processing: image → tensor (sharp), the `--preprocess` spec, softmax / argmax / top-k. */
export { IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, guessImagePreprocess, imageToTensor } from './image.js';
export { parsePreprocessSpec } from './spec.js';
export { postprocess, softmax, topK, type Classification, type PostprocessResult } from './postprocess.js';
export {
  openPipeline,
  isPipelineArtifact,
  planPipeline,
  Pipeline,
  type ModelSignature,
  type OpenPipelineOptions,
  type PipelineRun,
  type StepInfo,
  checkPipelineVectors,
  readPipelineVectors,
  vectorFile,
  encodeVectorTensor,
  DEFAULT_PIPELINE_TOLERANCE,
  MAX_PIPELINE_CASES,
  MAX_PIPELINE_CASE_BYTES,
} from './graph/index.js';
export { TRANSFORMS, MAX_LIST_ITEMS, type AnyTransform } from './transforms/index.js';
