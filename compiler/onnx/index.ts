/**
 * ONNX model IO for the compiler: load/save (with external data, lazily for models past 2 GiB), tensors as typed
 * arrays for every ONNX dtype, float16/bfloat16 conversion, graph queries and edits on the onnx-buf protos, and a
 * builder. See README.md in this folder for the data flow and invariants.
 */
export type { ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto, AttributeProto } from 'onnx-buf';
export type { OnnxModel } from './model.js';
export { PROTOBUF_LIMIT, asOnnxModel, cloneModel } from './model.js';
export { decodeModel, encodeModel, loadModel, type DecodeOptions, type LoadOptions } from './model-io.js';
export {
  EXTERNAL_DATA_DEFAULTS,
  saveModel,
  type ExternalDataOptions,
  type SaveOptions,
  type SaveResult,
} from './save.js';
export {
  externalDataInfo,
  readTensor,
  readTensorBytes,
  loadExternalData,
  verifyExternalData,
  type ByteRange,
  type ExternalDataInfo,
} from './external-data.js';
export {
  arrayToBytes,
  bytesToArray,
  elementCount,
  inferDType,
  makeTensor,
  setTensorData,
  tensorBytes,
  tensorByteLength,
  tensorDims,
  tensorDType,
  tensorToArray,
  usesExternalData,
  type TensorValue,
} from './tensor.js';
export {
  SUB_BYTE_DTYPES,
  float4e2m1ToFloat32,
  isSubByte,
  packSubByte,
  unpackSubByte,
  type SubByteDType,
} from './packed.js';
export {
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  fromBfloat16Bits,
  fromFloat16Bits,
  toBfloat16Bits,
  toFloat16Bits,
} from '../../runtime/tensor/index.js';
export {
  attr,
  constantValue,
  getAttribute,
  makeAttribute,
  type AttributeValue,
  type TypedAttribute,
} from './attributes.js';
export {
  consumers,
  definedNames,
  nodeReads,
  outerScopeNames,
  producers,
  sortTopologically,
  topologicalOrder,
} from './graph.js';
export {
  bypassNode,
  insertNodes,
  removeNodes,
  replaceUses,
  type InsertPosition,
  type RemoveOptions,
  type ReplaceUsesOptions,
} from './graph-edit.js';
export { NameGenerator } from './names.js';
export {
  mainGraph,
  makeValueInfo,
  opHistogram,
  opsetVersion,
  opsets,
  parameterCount,
  tensorTypeProto,
  valueType,
  valueTypes,
  type Dim,
  type ParameterCountOptions,
  type ValueType,
} from './inspect.js';
export {
  graphAndSubgraphs,
  graphTensors,
  modelGraphs,
  modelTensors,
  nodeSubgraphs,
  type TensorKind,
  type TensorSite,
} from './walk.js';
export { GraphBuilder, PRODUCER_NAME, type BuildOptions, type NodeOptions } from './builder.js';
