import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';
import { isAbsolute, relative, resolve, sep, win32 } from 'node:path';
import { clearField } from '@bufbuild/protobuf';
import { TensorProtoSchema, type TensorProto } from 'onnx-buf';
import { OutpostError, fromFsError } from '../../runtime/errors.js';
import { byteLength, dtypeFromOnnx } from '../../runtime/tensor/index.js';
import type { OnnxModel } from './model.js';
import {
  elementCount,
  rawToArray,
  tensorBytes,
  tensorDType,
  tensorDims,
  tensorToArray,
  usesExternalData,
  type TensorValue,
} from './tensor.js';
import { modelTensors } from './walk.js';

/**
 * ONNX external data (onnx ExternalData.md; onnx.proto, TensorProto.external_data): a tensor with
 * `data_location = EXTERNAL` keeps its raw bytes in a file named by the `location` key, relative to the model's
 * directory, at `offset` for `length` bytes. Tensors stay on disk until asked for (lazy), one tensor per read.
 */
export interface ExternalDataInfo {
  location: string;
  offset: number;
  /** From the `length` key, or the tensor's byte size from dtype × dims when the key is absent. */
  length: number;
  checksum: string | undefined;
}

/** Largest single read: fs.read refuses more than 2 GiB - 1 per call, so big tensors are read in pieces. */
const READ_CHUNK = 1024 * 1024 * 1024; // bytes

function tensorLabel(tensor: TensorProto): string {
  return tensor.name === '' ? 'an unnamed tensor' : `tensor "${tensor.name}"`;
}

/**
 * Why `location` may not be used, or undefined when it is a plain relative path. [ExternalData.md] "Up-directory
 * path components such as .. are disallowed"; absolute paths would let a model read any file on the host.
 */
export function locationProblem(location: string): string | undefined {
  if (location === '') return 'is empty';
  if (location.includes('\0')) return 'contains a NUL byte';
  if (isAbsolute(location) || win32.isAbsolute(location)) return 'is absolute; it must be relative to the model';
  if (location.split(/[\\/]/).includes('..')) return "contains '..'; it must stay inside the model's directory";
  return undefined;
}

function parseCount(value: string, key: string, tensor: TensorProto, source: string): number {
  const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed)) {
    throw new OutpostError(
      'MODEL_INVALID',
      `${source}: ${tensorLabel(tensor)} has external_data ${key}="${value}"; expected a non-negative integer`,
      { details: { source, tensor: tensor.name, key, value } },
    );
  }
  return parsed;
}

/** Parses and checks a tensor's external_data entries (unknown keys, like onnx's `basepath`, are ignored). */
export function externalDataInfo(tensor: TensorProto, source: string): ExternalDataInfo {
  const entries = new Map(tensor.externalData.map((e) => [e.key, e.value]));
  const location = entries.get('location') ?? '';
  const problem = locationProblem(location);
  if (problem !== undefined) {
    throw new OutpostError(
      'MODEL_INVALID',
      `${source}: ${tensorLabel(tensor)} external data location "${location}" ${problem}`,
      {
        details: { source, tensor: tensor.name, location },
      },
    );
  }
  const dtype = dtypeFromOnnx(tensor.dataType);
  if (dtype === 'string') {
    throw new OutpostError(
      'MODEL_UNSUPPORTED',
      `${source}: ${tensorLabel(tensor)} is a string tensor with external data`,
      {
        details: { source, tensor: tensor.name },
      },
    );
  }
  // An element type newer than this build has no known width; its `length` key still locates the bytes.
  const expected = dtype === undefined ? undefined : byteLength(dtype, elementCount(tensorDims(tensor)));
  const offsetText = entries.get('offset');
  const lengthText = entries.get('length');
  const offset = offsetText === undefined ? 0 : parseCount(offsetText, 'offset', tensor, source);
  const length = lengthText === undefined ? expected : parseCount(lengthText, 'length', tensor, source);
  if (length === undefined) {
    throw new OutpostError(
      'MODEL_UNSUPPORTED',
      `${source}: ${tensorLabel(tensor)} has data_type ${tensor.dataType}, unknown here, and no external_data length`,
      { details: { source, tensor: tensor.name, dataType: tensor.dataType } },
    );
  }
  if (expected !== undefined && length !== expected) {
    throw new OutpostError(
      'MODEL_INVALID',
      `${source}: ${tensorLabel(tensor)} has external_data length ${length}, but its dtype and dims need ${expected} bytes`,
      { details: { source, tensor: tensor.name, length, expected } },
    );
  }
  return { location, offset, length, checksum: entries.get('checksum') };
}

function requireBaseDir(model: OnnxModel, tensor: TensorProto): string {
  if (model.baseDir === undefined) {
    throw new OutpostError(
      'MODEL_EXTERNAL_DATA_MISSING',
      `${model.source}: ${tensorLabel(tensor)} keeps its data in an external file, but the model was not loaded from a directory`,
      { details: { source: model.source, tensor: tensor.name } },
    );
  }
  return model.baseDir;
}

/** Absolute path of the tensor's data file (lexically inside the model's directory; see `verifyExternalData`). */
export function externalDataPath(model: OnnxModel, tensor: TensorProto): { path: string; info: ExternalDataInfo } {
  const info = externalDataInfo(tensor, model.source);
  return { path: resolve(requireBaseDir(model, tensor), info.location), info };
}

function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

async function realDirectory(dir: string): Promise<string> {
  try {
    return await realpath(dir);
  } catch (error) {
    throw fromFsError(error, dir, 'read');
  }
}

/**
 * Checks every external tensor before anything is read: location is safe, the file exists (else
 * MODEL_EXTERNAL_DATA_MISSING naming file and tensor), it does not reach outside the model's directory through a
 * symlink, and offset + length fit in it. Each file is examined once.
 */
export async function verifyExternalData(model: OnnxModel): Promise<void> {
  const files = new Map<string, { size: number; real: string }>();
  let realBase: string | undefined;
  for (const { tensor } of modelTensors(model.proto)) {
    if (!usesExternalData(tensor)) continue;
    const { path, info } = externalDataPath(model, tensor);
    let found = files.get(path);
    if (found === undefined) {
      try {
        found = { size: (await stat(path)).size, real: await realpath(path) };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw missing(path, tensor, error, model.source);
        throw fromFsError(error, path, 'read');
      }
      files.set(path, found);
    }
    realBase ??= await realDirectory(requireBaseDir(model, tensor));
    if (!isInside(realBase, found.real)) {
      throw new OutpostError(
        'MODEL_INVALID',
        `${model.source}: external data file ${path} for ${tensorLabel(tensor)} resolves to ${found.real}, outside the model's directory`,
        { details: { source: model.source, tensor: tensor.name, file: path } },
      );
    }
    if (info.offset + info.length > found.size) {
      throw new OutpostError(
        'MODEL_INVALID',
        `${model.source}: ${tensorLabel(tensor)} needs bytes ${info.offset}..${info.offset + info.length} of ${path}, which has ${found.size}`,
        { details: { source: model.source, tensor: tensor.name, file: path, ...info, size: found.size } },
      );
    }
  }
}

/** Reads exactly `length` bytes at `position` into `target` (several reads for large or short-read cases). */
export async function readFully(handle: FileHandle, target: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(READ_CHUNK, target.length - done);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(target, done, want, position + done));
    } catch (error) {
      throw fromFsError(error, path, 'read');
    }
    if (bytesRead === 0) {
      throw new OutpostError(
        'MODEL_INVALID',
        `${path} ended at byte ${position + done}; expected ${target.length - done} more`,
        {
          details: { file: path, position: position + done },
        },
      );
    }
    done += bytesRead;
  }
}

/**
 * Opens a data file for reading. With `tensor` given, a vanished file is MODEL_EXTERNAL_DATA_MISSING naming the
 * tensor (it was there at load time, or this is a lazy read of a model that was never verified).
 */
export async function openForRead(path: string, tensor?: TensorProto): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if (tensor !== undefined && (error as NodeJS.ErrnoException).code === 'ENOENT') throw missing(path, tensor, error);
    throw fromFsError(error, path, 'read');
  }
}

function missing(path: string, tensor: TensorProto, cause: unknown, source?: string): OutpostError {
  return new OutpostError(
    'MODEL_EXTERNAL_DATA_MISSING',
    `${source === undefined ? '' : `${source}: `}external data file ${path} for ${tensorLabel(tensor)} does not exist`,
    { cause, details: { source, tensor: tensor.name, file: path } },
  );
}

/** Byte range inside a tensor's data, for sampling large tensors without reading them whole. */
export interface ByteRange {
  offset: number; // bytes from the start of the tensor's data
  length: number; // bytes
}

/**
 * The tensor's data bytes (little-endian, as raw_data holds them), read from its external file when it has one.
 * One tensor, or one range of it, per call: the whole model is never in memory at once.
 */
export async function readTensorBytes(
  model: OnnxModel,
  tensor: TensorProto,
  range?: ByteRange,
): Promise<Uint8Array<ArrayBuffer>> {
  if (!usesExternalData(tensor)) {
    const bytes = tensorBytes(tensor);
    return range === undefined ? bytes : bytes.subarray(range.offset, range.offset + range.length);
  }
  const { path, info } = externalDataPath(model, tensor);
  const start = range?.offset ?? 0;
  const length = range?.length ?? info.length;
  if (start < 0 || length < 0 || start + length > info.length) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `range ${start}+${length} is outside ${tensorLabel(tensor)}'s ${info.length} bytes`,
    );
  }
  if (length > bufferConstants.MAX_LENGTH) {
    throw new OutpostError(
      'MODEL_UNSUPPORTED',
      `${tensorLabel(tensor)} is ${length} bytes, more than one buffer can hold (${bufferConstants.MAX_LENGTH}); read it in ranges`,
      { details: { tensor: tensor.name, length } },
    );
  }
  const handle = await openForRead(path, tensor);
  try {
    const bytes = new Uint8Array(length);
    await readFully(handle, bytes, info.offset + start, path);
    return bytes;
  } finally {
    await handle.close();
  }
}

/** The tensor's values as a typed array, reading external data from disk when needed. */
export async function readTensor(model: OnnxModel, tensor: TensorProto): Promise<TensorValue> {
  if (!usesExternalData(tensor)) return tensorToArray(tensor);
  const dtype = tensorDType(tensor);
  const dims = tensorDims(tensor);
  const bytes = await readTensorBytes(model, tensor);
  return { dtype, dims, data: rawToArray(tensor, dtype, bytes, elementCount(dims)) };
}

/**
 * Eager loading: reads every external tensor into raw_data and drops its external reference, as onnx's
 * `load_external_data_for_model` does. Each data file is opened once.
 */
export async function loadExternalData(model: OnnxModel): Promise<void> {
  const handles = new Map<string, FileHandle>();
  try {
    for (const { tensor } of modelTensors(model.proto)) {
      if (!usesExternalData(tensor)) continue;
      const { path, info } = externalDataPath(model, tensor);
      let handle = handles.get(path);
      if (handle === undefined) {
        handle = await openForRead(path, tensor);
        handles.set(path, handle);
      }
      if (info.length > bufferConstants.MAX_LENGTH) {
        throw new OutpostError(
          'MODEL_UNSUPPORTED',
          `${tensorLabel(tensor)} is ${info.length} bytes; load the model lazily`,
          {
            details: { tensor: tensor.name, length: info.length },
          },
        );
      }
      const bytes = new Uint8Array(info.length);
      await readFully(handle, bytes, info.offset, path);
      tensor.rawData = bytes;
      clearField(tensor, TensorProtoSchema.field.externalData);
      clearField(tensor, TensorProtoSchema.field.dataLocation);
    }
  } finally {
    await Promise.all([...handles.values()].map((h) => h.close()));
  }
}
