import type { TensorValue } from '../../backends/types.js';
import type { Model } from '../../model/model.js';
import { jsonElement, kserveDatatype } from '../../tensor/json.js';
import { elementBytes, tensorToBinary } from './binary.js';
import { HttpError } from '../http/status.js';
import type { InferRequest } from './request.js';

/**
 * The inference response (Open Inference Protocol, README.md "Inference request and response"), written under a
 * size cap: JSON outputs are encoded in slices and the encoding stops as soon as the answer passes `maxBytes`, so an
 * answer too large costs at most the cap in memory (not the gigabytes a JSON array of a hundred million floats
 * takes), and the client hears why with a 400 it can act on.
 */
export const DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024; // bytes, as the request body limit

/** Elements JSON-encoded at a time: the unit the cap is checked in. */
const SLICE = 16_384; // elements
/** No JSON element is shorter than one character and its comma. */
const MIN_JSON_ELEMENT = 2; // bytes
/** A BYTES element in binary is at least its 4-byte length prefix. */
const MIN_BINARY_STRING = 4; // bytes

/** A response ready to write: the JSON object, then the binary outputs' bytes in output order. */
export interface EncodedResponse {
  readonly header: Buffer;
  readonly parts: readonly Uint8Array[];
  readonly binaryBytes: number;
}

/** Pieces of the JSON text and binary sections, counted against the cap as they are added. */
class CappedBody {
  private readonly text: string[] = [];
  bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly request: InferRequest,
  ) {}

  add(text: string): void {
    this.count(Buffer.byteLength(text));
    this.text.push(text);
  }

  count(bytes: number): void {
    this.bytes += bytes;
    if (this.bytes > this.maxBytes) throw tooLarge(`more than ${this.maxBytes}`, this.maxBytes, this.request);
  }

  json(): Buffer {
    return Buffer.from(this.text.join(''));
  }
}

function tooLarge(size: string, maxBytes: number, request: InferRequest): HttpError {
  const asked = request.outputs.map((o) => `${o.name}${o.binary ? ' (binary)' : ''}`).join(', ');
  return new HttpError(
    400,
    `the answer (${asked}) would be ${size} bytes, over this server's ${maxBytes}-byte response limit: ask for ` +
      'fewer outputs ("outputs"; for an image body ?outputs=a,b), or for binary data ("binary_data_output": true; ' +
      'for an image body ?binary_data_output=true)',
    'RESPONSE_TOO_LARGE',
  );
}

/** The least the requested outputs can take: refused before a byte is encoded when even that is over the cap. */
function lowerBound(request: InferRequest, outputs: Readonly<Record<string, TensorValue>>): number {
  let bytes = 0;
  for (const { name, binary } of request.outputs) {
    const tensor = outputs[name];
    if (tensor === undefined) continue;
    const n = tensor.data.length;
    bytes += binary ? n * (elementBytes(tensor.type) ?? MIN_BINARY_STRING) : n * MIN_JSON_ELEMENT;
  }
  return bytes;
}

/** The response: JSON tensors where the client asked for JSON, binary data where it asked for binary. */
export function encodeInferResponse(
  model: Model,
  request: InferRequest,
  outputs: Readonly<Record<string, TensorValue>>,
  maxBytes: number = DEFAULT_MAX_RESPONSE,
): EncodedResponse {
  const floor = lowerBound(request, outputs);
  if (floor > maxBytes) throw tooLarge(`at least ${floor}`, maxBytes, request);
  const body = new CappedBody(maxBytes, request);
  const parts: Uint8Array[] = [];
  let binaryBytes = 0;
  const id = request.id === undefined ? '' : `,"id":${JSON.stringify(request.id)}`;
  body.add(
    `{"model_name":${JSON.stringify(model.name)},"model_version":${JSON.stringify(model.version)}${id},"outputs":[`,
  );
  let first = true;
  for (const { name, binary } of request.outputs) {
    const tensor = outputs[name];
    if (tensor === undefined) continue;
    const described = `${first ? '' : ','}{"name":${JSON.stringify(name)},"datatype":${JSON.stringify(kserveDatatype(tensor.type))},"shape":${JSON.stringify([...tensor.dims])}`;
    first = false;
    if (binary) {
      const bytes = tensorToBinary(tensor);
      body.count(bytes.byteLength);
      parts.push(bytes);
      binaryBytes += bytes.byteLength;
      body.add(`${described},"parameters":{"binary_data_size":${bytes.byteLength}}}`);
      continue;
    }
    body.add(`${described},"data":[`);
    const { data, type } = tensor;
    for (let start = 0; start < data.length; start += SLICE) {
      const end = Math.min(data.length, start + SLICE);
      const slice: (number | string | boolean)[] = [];
      for (let i = start; i < end; i++) slice.push(jsonElement(data[i], type));
      const text = JSON.stringify(slice);
      body.add(`${start === 0 ? '' : ','}${text.slice(1, -1)}`);
    }
    body.add(']}');
  }
  body.add(']}');
  return { header: body.json(), parts, binaryBytes };
}
