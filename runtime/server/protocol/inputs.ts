import type { Feeds } from '../../model/model.js';
import { tensorFromJson } from '../../tensor/json.js';
import { elementCount, type TensorLike } from '../../tensor/tensor.js';
import { bytesElements, isOneBytesElement, tensorFromBinary } from './binary.js';
import { HttpError } from '../http/status.js';
import type { ServingPipeline } from '../serving/pipeline.js';
import type { InferRequest, RequestInput } from './request.js';

/**
 * The encoded images of an image input sent as BYTES: per the binary extension each element is length-prefixed;
 * one image may also come as the bare file bytes (what OpenVINO Model Server accepts, and what `curl
 * --data-binary @cat.jpg` sends). A JPEG or PNG never starts with its own length minus four, so the two cannot be
 * confused. In JSON each element is a base64 string.
 */
function encodedImages(input: RequestInput, what: string): Uint8Array[] {
  const count = elementCount(input.dims);
  let images: Uint8Array[];
  if (input.binary !== undefined) {
    images = count === 1 && !isOneBytesElement(input.binary) ? [input.binary] : bytesElements(input.binary, what);
  } else {
    images = (input.data ?? []).map((value, i) => {
      if (typeof value !== 'string')
        throw new HttpError(400, `${what}: element ${i} is not a base64 string`, 'INPUT_INVALID');
      return Buffer.from(value, 'base64');
    });
  }
  if (images.length !== count) {
    throw new HttpError(
      400,
      `${what}: shape [${input.dims.join(', ')}] needs ${count} images, the request holds ${images.length}`,
      'INPUT_SHAPE_MISMATCH',
    );
  }
  return images;
}

/**
 * The request's inputs as feeds for `Model.infer()`: binary data viewed in place where aligned, JSON data filled
 * into typed arrays, images decoded per the artifact's pre-processing. The model validates names, dtypes and shapes
 * again when it runs; here only what decoding needs is checked.
 */
export async function decodeInputs(request: InferRequest, pipeline: ServingPipeline): Promise<Feeds> {
  const feeds = Object.create(null) as Record<string, TensorLike>;
  for (const input of request.inputs) {
    const what = `input "${input.name}"`;
    if (input.dtype === 'string' && pipeline.image?.input === input.name) {
      feeds[input.name] = await pipeline.images(encodedImages(input, what));
    } else if (input.binary !== undefined) {
      const data = tensorFromBinary(input.binary, input.dtype, input.dims, what);
      feeds[input.name] = { data, dims: input.dims, type: input.dtype };
    } else {
      feeds[input.name] = tensorFromJson({ shape: input.dims, datatype: input.dtype, data: input.data }, what);
    }
  }
  return feeds;
}
