import { clearField, create, isFieldSet } from '@bufbuild/protobuf';
import { StringStringEntryProtoSchema, TensorProtoSchema, TensorProto_DataLocation, type TensorProto } from 'onnx-buf';

/**
 * Temporary rewrites of where a tensor's data lives, for encoding a model the way it is saved (external references,
 * or bytes read from disk embedded) without copying the model or its data. `withPatches` applies, runs a synchronous
 * callback (the encode) and restores every field with its exact presence, so no caller can observe the swap.
 */
const DATA_FIELDS = [
  'rawData',
  'dataLocation',
  'externalData',
  'floatData',
  'int32Data',
  'int64Data',
  'doubleData',
  'uint64Data',
  'stringData',
] as const;
type DataField = (typeof DATA_FIELDS)[number];
type DataFields = Partial<Pick<TensorProto, DataField>>;

export interface TensorPatch {
  apply(): void;
  restore(): void;
}

function snapshot(tensor: TensorProto): DataFields {
  const saved: DataFields = {};
  for (const field of DATA_FIELDS) {
    if (isFieldSet(tensor, TensorProtoSchema.field[field])) Object.assign(saved, { [field]: tensor[field] });
  }
  return saved;
}

function replaceData(tensor: TensorProto, fields: DataFields): void {
  for (const field of DATA_FIELDS) clearField(tensor, TensorProtoSchema.field[field]);
  Object.assign(tensor, fields);
}

function patch(tensor: TensorProto, next: DataFields): TensorPatch {
  let saved: DataFields | undefined;
  return {
    apply() {
      saved = snapshot(tensor);
      replaceData(tensor, next);
    },
    restore() {
      if (saved !== undefined) replaceData(tensor, saved);
    },
  };
}

/** [ExternalData.md] data_location EXTERNAL with location/offset/length keys; value fields MUST NOT be used. */
export function externalizeTensor(tensor: TensorProto, location: string, offset: number, length: number): TensorPatch {
  return patch(tensor, {
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [
      create(StringStringEntryProtoSchema, { key: 'location', value: location }),
      create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
      create(StringStringEntryProtoSchema, { key: 'length', value: String(length) }),
    ],
  });
}

/** The tensor's data embedded as raw_data (data_location left unset, meaning DEFAULT). */
export function embedTensor(tensor: TensorProto, bytes: Uint8Array<ArrayBuffer>): TensorPatch {
  return patch(tensor, { rawData: bytes });
}

/** Applies the patches, runs `fn`, and restores the tensors even when `fn` throws. */
export function withPatches(patches: readonly TensorPatch[], fn: () => void): void {
  let applied = 0;
  try {
    for (const p of patches) {
      p.apply();
      applied += 1;
    }
    fn();
  } finally {
    for (let i = applied - 1; i >= 0; i--) patches[i]?.restore();
  }
}
