/** Tensors: the one dtype table, float16/bfloat16, `.npy` and JSON codecs, tensor files, synthetic data, agreement. */
export {
  DTYPES,
  allocateData,
  byteLength,
  dataMatchesDType,
  dtypeFromOnnx,
  dtypeOfData,
  isDType,
  type DType,
  type NumericData,
  type TensorData,
} from './dtype.js';
export {
  HOST_IS_LITTLE_ENDIAN,
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  fromBfloat16Bits,
  fromFloat16Bits,
  toBfloat16Bits,
  toFloat16Bits,
} from './float16.js';
export { allClose, elementCount, seededRandom, syntheticData, zeros, type TensorLike } from './tensor.js';
export { decodeNpy, encodeNpy, type NpyTensor } from './npy.js';
export { kserveDatatype, tensorToJson } from './json.js';
export { readBytes, readTensorFile, tensorsFromJson, type FeedMap } from './files.js';
export { Agreement, looksLikeClassifier, type AgreementFigures } from './agreement.js';
