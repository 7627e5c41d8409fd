/** Loading a model and running it: `loadModel(path).infer(feeds)`; see runtime/README.md ("Loading a model"). */
export { loadModel, type LoadOptions } from './load.js';
export { Model, type Feeds, type Outputs } from './model.js';
export { readTestVectors, type TestVectorCase } from './test-vectors.js';
export { BATCH_SYMBOLS, InputValidator, concreteShape, formatShape } from './validate.js';
export { sampleFeeds, syntheticFeeds } from './warmup.js';
export { BARE_MODEL_SUFFIXES, isBareModelPath, wrapBareModel, type WrapOptions } from './wrap.js';
