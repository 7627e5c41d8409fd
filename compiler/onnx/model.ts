import { clone, isMessage } from '@bufbuild/protobuf';
import { ModelProtoSchema, type ModelProto } from 'onnx-buf';

/**
 * A decoded model and where its external data lives. The proto is the model (edit it in place; graph helpers work on
 * its GraphProto); `baseDir` is what ONNX's external_data `location`s are relative to (onnx ExternalData.md: "file
 * path relative to the filesystem directory where the ONNX protobuf model was stored").
 */
export interface OnnxModel {
  proto: ModelProto;
  /** Absolute directory external data resolves against; undefined for a model decoded from bytes with no file. */
  baseDir: string | undefined;
  /** Where the model came from (its path, or a label), for error messages. */
  source: string;
}

/** Accepts either a bare ModelProto (from the builder) or a loaded model. */
export function asOnnxModel(model: OnnxModel | ModelProto): OnnxModel {
  return isMessage(model, ModelProtoSchema) ? { proto: model, baseDir: undefined, source: 'in-memory model' } : model;
}

/** protobuf's hard limit on one serialized message (2 GiB - 1): larger models must keep tensors in external data. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1; // bytes

/** A deep copy that passes can edit while the original stays as it was; external data still resolves alike. */
export function cloneModel(model: OnnxModel): OnnxModel {
  return { proto: clone(ModelProtoSchema, model.proto), baseDir: model.baseDir, source: model.source };
}
