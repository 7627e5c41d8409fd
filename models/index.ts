/** Sample models built from code (see README.md in this folder): `buildSamples(dir)` writes them as `.onnx` files. */
export { buildSamples } from './build.js';
export { OPSET, SAMPLES, buildCnn, buildMlp, type SampleModel } from './samples.js';
