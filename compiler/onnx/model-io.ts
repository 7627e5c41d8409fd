import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, type ModelProto } from 'onnx-buf';
import { OutpostError, fromFsError, messageOf } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { loadExternalData, verifyExternalData } from './external-data.js';
import { PROTOBUF_LIMIT, asOnnxModel, type OnnxModel } from './model.js';
import { usesExternalData } from './tensor.js';
import { modelTensors } from './walk.js';

/**
 * Model files ↔ ModelProto through onnx-buf (@bufbuild/protobuf v2), which keeps every field it does not interpret,
 * unknown ones included, so decode → encode of an unchanged model gives back the same bytes. Saving lives in save.ts.
 */
const log = logger('compiler.onnx');

export interface DecodeOptions {
  /** Named in error messages (the file path, usually). */
  source?: string;
  /** Directory external data resolves against. */
  baseDir?: string;
}

export interface LoadOptions {
  /**
   * 'lazy' (default): tensors in external files stay there and are read one at a time on demand
   * (`readTensor`, `readTensorBytes`), so models beyond memory or protobuf's 2 GiB load fine. 'eager': every external
   * tensor is read into raw_data now and its external reference dropped.
   */
  externalData?: 'lazy' | 'eager';
}

function invalid(source: string, why: string, cause?: unknown): OutpostError {
  return new OutpostError('MODEL_INVALID', `${source} is not a valid ONNX model: ${why}`, {
    cause,
    details: { source },
  });
}

/**
 * Decodes model bytes. A protobuf failure, or a message without the fields every model MUST have (ir_version, a
 * graph, an opset_import: onnx IR.md, "Models"), is MODEL_INVALID naming the source — the usual outcome for a
 * truncated file, an empty one, or one that is not ONNX at all.
 */
export function decodeModel(bytes: Uint8Array, options: DecodeOptions = {}): OnnxModel {
  const source = options.source ?? 'model bytes';
  if (bytes.length === 0) throw invalid(source, 'the file is empty');
  if (bytes.length > PROTOBUF_LIMIT)
    throw invalid(source, `${bytes.length} bytes is over protobuf's 2 GiB message limit`);
  let proto: ModelProto;
  try {
    proto = fromBinary(ModelProtoSchema, bytes);
  } catch (error) {
    throw invalid(source, `protobuf decoding failed (${messageOf(error)}); the file may be truncated`, error);
  }
  if (proto.irVersion <= 0n) throw invalid(source, 'ir_version is missing');
  if (proto.graph === undefined) throw invalid(source, 'it has no graph');
  if (proto.opsetImport.length === 0) throw invalid(source, 'opset_import is empty');
  return { proto, baseDir: options.baseDir === undefined ? undefined : resolve(options.baseDir), source };
}

/** Bytes of tensor data embedded in the proto (raw_data only: typed fields are small in practice). */
export function embeddedDataBytes(proto: ModelProto): number {
  let total = 0;
  for (const { tensor } of modelTensors(proto)) if (!usesExternalData(tensor)) total += tensor.rawData.length;
  return total;
}

/** MODEL_UNSUPPORTED for a model that cannot be one protobuf message. */
export function tooLarge(source: string, bytes: number): OutpostError {
  return new OutpostError(
    'MODEL_UNSUPPORTED',
    `${source} would serialise to ${bytes} bytes, over protobuf's 2 GiB limit; save it with externalData: { location }`,
    { details: { source, bytes, limit: PROTOBUF_LIMIT } },
  );
}

/** Encodes the proto as it stands (external references stay references). */
export function encodeModel(model: OnnxModel | ModelProto): Uint8Array {
  const { proto, source } = asOnnxModel(model);
  const embedded = embeddedDataBytes(proto);
  if (embedded > PROTOBUF_LIMIT) throw tooLarge(source, embedded);
  let bytes: Uint8Array;
  try {
    bytes = toBinary(ModelProtoSchema, proto);
  } catch (error) {
    if (error instanceof RangeError) throw tooLarge(source, embedded);
    throw error;
  }
  if (bytes.length > PROTOBUF_LIMIT) throw tooLarge(source, bytes.length);
  return bytes;
}

/**
 * Loads a model file. External data files are checked up front (present, inside the model's directory, large
 * enough) whichever mode is chosen, so a missing file fails here rather than in the middle of a pass.
 */
export async function loadModel(path: string, options: LoadOptions = {}): Promise<OnnxModel> {
  const file = resolve(path);
  const started = performance.now();
  let bytes: Uint8Array;
  try {
    const info = await stat(file);
    if (info.isDirectory()) {
      throw new OutpostError('FILE_UNREADABLE', `${file} is a directory; expected an .onnx file`, {
        details: { path: file },
      });
    }
    if (info.size > PROTOBUF_LIMIT) throw invalid(file, `${info.size} bytes is over protobuf's 2 GiB message limit`);
    bytes = await readFile(file);
  } catch (error) {
    if (error instanceof OutpostError) throw error;
    throw fromFsError(error, file, 'read');
  }
  const model = decodeModel(bytes, { source: file, baseDir: dirname(file) });
  await verifyExternalData(model);
  if (options.externalData === 'eager') await loadExternalData(model);
  log.debug(
    { path: file, bytes: bytes.length, ms: performance.now() - started, mode: options.externalData ?? 'lazy' },
    'model loaded',
  );
  return model;
}
