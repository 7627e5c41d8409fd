import { cropTransform } from './crop.js';
import { ctcDecodeTransform } from './ctc-decode.js';
import { imageDecodeTransform, imageTensorTransform } from './image.js';
import { maskToBoxesTransform } from './mask-to-boxes.js';
import { nmsTransform } from './nms.js';
import { argmaxTransform, softmaxTransform, topkTransform } from './classify.js';
import type { AnyTransform } from './types.js';

/** Every built-in transform by op name (docs/pipelines.md, "Transforms"); error messages list these keys. */
export const TRANSFORMS: Readonly<Record<string, AnyTransform>> = Object.freeze({
  'image-decode': imageDecodeTransform as unknown as AnyTransform,
  'image-tensor': imageTensorTransform as unknown as AnyTransform,
  'mask-to-boxes': maskToBoxesTransform as unknown as AnyTransform,
  crop: cropTransform as unknown as AnyTransform,
  'ctc-decode': ctcDecodeTransform as unknown as AnyTransform,
  nms: nmsTransform as unknown as AnyTransform,
  softmax: softmaxTransform as unknown as AnyTransform,
  argmax: argmaxTransform as unknown as AnyTransform,
  topk: topkTransform as unknown as AnyTransform,
});

export { MAX_LIST_ITEMS } from './limits.js';
export type { AnyTransform, PortSpec, TransformContext, TransformDef, TransformRun, Tensors } from './types.js';
