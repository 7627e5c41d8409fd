import { mkdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  type ModelProto,
  type TensorProto,
} from 'onnx-buf';
import { syncDir } from '../../runtime/artifact/index.js';
import { OutpostError, fromFsError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { tempName, writeDataFile, writeModelFile, type Placement, type Written } from './data-file.js';
import { externalDataPath, locationProblem, readTensorBytes } from './external-data.js';
import { embeddedDataBytes, tooLarge } from './model-io.js';
import { PROTOBUF_LIMIT, asOnnxModel, type OnnxModel } from './model.js';
import { embedTensor, externalizeTensor, withPatches, type TensorPatch } from './patch.js';
import { tensorByteLength, usesExternalData } from './tensor.js';
import { modelTensors } from './walk.js';

/**
 * Saving: tensor data streams into the data file one tensor at a time (never the whole model in one buffer), then
 * the model proto is encoded with those tensors pointing at the file. Both files are written under temporary names
 * and renamed into place, data first, so a crash leaves either the old pair or the new one's data beside the old model.
 */
const log = logger('compiler.onnx');

export interface ExternalDataOptions {
  /** Data file, relative to the model file's directory (onnx ExternalData.md: no '..', not absolute). */
  location: string;
  /** Tensors with at least this much data go to the data file; smaller ones stay embedded. */
  threshold?: number; // bytes; onnx's convert_model_to_external_data size_threshold default
  /** Each tensor's offset is a multiple of this, so runtimes can mmap it (ExternalData.md: page size; 65536 for Windows). */
  alignment?: number; // bytes
  /** Also move node attribute tensors (Constant values), not only initializers, like onnx's convert_attribute=True. */
  attributes?: boolean;
}

export const EXTERNAL_DATA_DEFAULTS = Object.freeze({
  threshold: 1024, // bytes
  alignment: 4096, // bytes, the usual page size
  attributes: true,
});

export interface SaveOptions {
  /** Write large tensors to a separate data file; without it every tensor is embedded (2 GiB limit applies). */
  externalData?: ExternalDataOptions;
  /** fsync files (and the directory) before and after the rename, so a power cut cannot leave a torn model. */
  durable?: boolean; // default true
}

export interface SaveResult {
  path: string;
  bytes: number;
  dataPath: string | undefined;
  dataBytes: number;
  externalTensors: number;
}

function checkExternalOptions(options: ExternalDataOptions, target: string): Required<ExternalDataOptions> {
  const merged = { ...EXTERNAL_DATA_DEFAULTS, ...options };
  const problem = locationProblem(merged.location);
  if (problem !== undefined) {
    throw new OutpostError('INVALID_ARGUMENT', `externalData.location "${merged.location}" ${problem}`, {
      details: { location: merged.location },
    });
  }
  if (resolve(dirname(target), merged.location) === target) {
    throw new OutpostError('INVALID_ARGUMENT', `externalData.location "${merged.location}" is the model file itself`);
  }
  if (!Number.isSafeInteger(merged.threshold) || merged.threshold < 0) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `externalData.threshold must be a non-negative integer, got ${merged.threshold}`,
    );
  }
  if (!Number.isSafeInteger(merged.alignment) || merged.alignment < 1) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `externalData.alignment must be a positive integer, got ${merged.alignment}`,
    );
  }
  return merged;
}

function sumOf(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function plan(model: OnnxModel, options: Required<ExternalDataOptions> | undefined): Placement[] {
  const seen = new Set<TensorProto>();
  const placements: Placement[] = [];
  for (const { tensor, kind } of modelTensors(model.proto)) {
    if (seen.has(tensor)) continue;
    seen.add(tensor);
    const size = tensorByteLength(tensor);
    const movable = kind === 'initializer' || (kind === 'attribute' && options?.attributes === true);
    const external = options !== undefined && movable && size !== undefined && size >= options.threshold;
    const lazy = usesExternalData(tensor);
    if (!external && !lazy) continue; // stays embedded exactly as it is
    let source: Placement['source'];
    if (lazy) {
      const { path, info } = externalDataPath(model, tensor);
      source = { path, offset: info.offset, length: info.length };
    }
    placements.push({ tensor, source, external });
  }
  return placements;
}

/**
 * Saves the model to `path`, with large tensors in `externalData.location` when asked. The model in memory is left
 * as it was, except that lazy tensors whose data file this save replaces are re-pointed at the new file (or, if they
 * were embedded this time, given their bytes), so they stay readable.
 */
export async function saveModel(
  input: OnnxModel | ModelProto,
  path: string,
  options: SaveOptions = {},
): Promise<SaveResult> {
  const started = performance.now();
  const model = asOnnxModel(input);
  const target = resolve(path);
  const durable = options.durable ?? true;
  const external = options.externalData === undefined ? undefined : checkExternalOptions(options.externalData, target);
  const dataPath = external === undefined ? undefined : resolve(dirname(target), external.location);
  const placements = plan(model, external);
  if (placements.some((p) => p.source?.path === target)) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `${target} holds external data this model reads; save the model elsewhere`,
    );
  }
  // Lazy tensors that stay embedded need their bytes now; refuse before reading anything if the proto could not
  // hold them (the exact size is checked again after encoding).
  const inline =
    embeddedDataBytes(model.proto) -
    sumOf(placements.filter((p) => p.external && p.source === undefined).map((p) => p.tensor.rawData.length)) +
    sumOf(placements.filter((p) => !p.external).map((p) => p.source?.length ?? 0));
  if (inline > PROTOBUF_LIMIT) throw tooLarge(model.source, inline);
  const embedded = new Map<TensorProto, Uint8Array<ArrayBuffer>>();
  for (const p of placements) if (!p.external) embedded.set(p.tensor, await readTensorBytes(model, p.tensor));

  const temps: string[] = [];
  try {
    // The model's directory, and a sub-directory the location names (e.g. "weights/model.bin"), are created.
    await mkdir(dirname(target), { recursive: true });
    if (dataPath !== undefined) await mkdir(dirname(dataPath), { recursive: true });
    let data = { written: new Map<TensorProto, Written>(), bytes: 0 };
    const dataTemp = dataPath === undefined ? undefined : tempName(dataPath);
    if (dataTemp !== undefined && placements.some((p) => p.external)) {
      temps.push(dataTemp);
      data = await writeDataFile(placements, dataTemp, external?.alignment ?? 1, durable);
    }
    const patches: TensorPatch[] = [];
    for (const p of placements) {
      const at = data.written.get(p.tensor);
      if (at !== undefined && external !== undefined) {
        patches.push(externalizeTensor(p.tensor, external.location, at.offset, at.length));
      } else {
        patches.push(embedTensor(p.tensor, embedded.get(p.tensor) ?? new Uint8Array(0)));
      }
    }
    let bytes: Uint8Array = new Uint8Array(0);
    withPatches(patches, () => {
      bytes = toBinary(ModelProtoSchema, model.proto);
    });
    if (bytes.length > PROTOBUF_LIMIT) throw tooLarge(model.source, bytes.length);
    const modelTemp = tempName(target);
    temps.push(modelTemp);
    await writeModelFile(bytes, modelTemp, durable);
    if (dataTemp !== undefined && dataPath !== undefined && data.written.size > 0) await rename(dataTemp, dataPath);
    await rename(modelTemp, target);
    temps.length = 0;
    if (durable) await syncDir(dirname(target));
    if (data.written.size > 0) rebaseReplaced(placements, dataPath, data.written, embedded);
    log.debug(
      { path: target, bytes: bytes.length, dataBytes: data.bytes, ms: performance.now() - started },
      'model saved',
    );
    return {
      path: target,
      bytes: bytes.length,
      dataPath: data.written.size > 0 ? dataPath : undefined,
      dataBytes: data.bytes,
      externalTensors: data.written.size,
    };
  } catch (error) {
    if (error instanceof OutpostError) throw error;
    throw fromFsError(error, target, 'write');
  } finally {
    await Promise.all(temps.map((t) => unlink(t).catch(() => undefined)));
  }
}

/** Lazy tensors that read from the file this save replaced must follow their bytes to the new layout. */
function rebaseReplaced(
  placements: readonly Placement[],
  dataPath: string | undefined,
  written: ReadonlyMap<TensorProto, Written>,
  embedded: ReadonlyMap<TensorProto, Uint8Array<ArrayBuffer>>,
): void {
  if (dataPath === undefined) return;
  for (const p of placements) {
    if (p.source?.path !== dataPath) continue;
    const at = written.get(p.tensor);
    if (at !== undefined) {
      // Same file, same location text (it resolves to dataPath from the model's own directory); new offset.
      const location = p.tensor.externalData.find((e) => e.key === 'location')?.value ?? basename(dataPath);
      p.tensor.externalData = [
        create(StringStringEntryProtoSchema, { key: 'location', value: location }),
        create(StringStringEntryProtoSchema, { key: 'offset', value: String(at.offset) }),
        create(StringStringEntryProtoSchema, { key: 'length', value: String(at.length) }),
      ];
      p.tensor.dataLocation = TensorProto_DataLocation.EXTERNAL;
    } else {
      embedTensor(p.tensor, embedded.get(p.tensor) ?? new Uint8Array(0)).apply();
    }
  }
}
