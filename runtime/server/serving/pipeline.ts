import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImagePreprocess } from '../../artifact/manifest.js';
import { OutpostError, isOutpostError, messageOf } from '../../errors.js';
import { logger } from '../../log.js';
import type { Model, Outputs } from '../../model/model.js';
import type * as ImageModule from '../../pipeline/image.js';
import type { TensorLike } from '../../tensor/tensor.js';
import { planPostprocess, runPostprocess, type PostprocessPlan } from './postprocess-plan.js';
import type { RequestedOutput, TensorMetadata } from '../protocol/request.js';

const log = logger('server.pipeline');

/** Images one request may carry for one input: each decodes to a whole input tensor, so memory grows with it. */
export const MAX_IMAGES_PER_REQUEST = 64; // images

/** sharp is loaded on the first image, not when the server starts: `outpost agent` serving tensors never pays for it. */
let imageModule: Promise<typeof ImageModule> | undefined;

/**
 * What the server does around one model beyond `infer()`, per the artifact's `pipeline`: decoding images for the
 * pre-processed input, post-processing outputs, and the labels top-k names. Built once per loaded model (labels are
 * read then, not per request) and cached for the model's lifetime.
 */
export class ServingPipeline {
  /** The image input and how to turn bytes into its tensor, when the artifact declares one. */
  readonly image: ImagePreprocess | undefined;
  /** Post-processing outputs, as model metadata lists them. */
  readonly extraOutputs: readonly TensorMetadata[];
  /** Every output a request may ask for: the model's own, then post-processing's. */
  readonly outputNames: readonly string[];
  /**
   * The artifact's declared answer, what an image body gets unless it asks for other outputs: the post-processing
   * outputs when the artifact declares post-processing (top-k labels, probabilities …), else every model output.
   */
  readonly answerNames: readonly string[];
  private readonly plan: PostprocessPlan;
  private readonly extra: ReadonlySet<string>;

  constructor(
    private readonly model: Model,
    labels: readonly string[] | undefined,
  ) {
    const { preprocess, postprocess } = model.manifest.pipeline;
    const where = { model: model.name, version: model.version };
    if (preprocess !== undefined && !model.inputs.some((i) => i.name === preprocess.input)) {
      log.warn({ ...where, input: preprocess.input }, 'image pre-processing names no input of the model; ignored');
    }
    this.image = model.inputs.some((i) => i.name === preprocess?.input) ? preprocess : undefined;
    this.plan = planPostprocess(postprocess, model.outputs, labels, (step, why) =>
      log.warn({ ...where, step }, `post-processing step skipped: ${why}`),
    );
    this.extraOutputs = this.plan.outputs;
    this.extra = new Set(this.plan.outputs.map((o) => o.name));
    this.outputNames = [...model.outputs.map((o) => o.name), ...this.extra];
    this.answerNames = this.extra.size > 0 ? [...this.extra] : model.outputs.map((o) => o.name);
  }

  /** Whether any requested output comes from post-processing (else it is not run). */
  wantsPostprocess(outputs: readonly RequestedOutput[]): boolean {
    return this.extra.size > 0 && outputs.some((o) => this.extra.has(o.name));
  }

  postprocess(outputs: Readonly<Outputs>): Outputs {
    return runPostprocess(this.plan, outputs);
  }

  /**
   * Encoded images (JPEG, PNG, …) → the image input's tensor, a batch of `images.length`, through the same
   * `imageToTensor` the CLI and calibration use. An undecodable image is a 400 naming the input and the element.
   */
  async images(images: readonly Uint8Array[]): Promise<TensorLike> {
    const spec = this.image;
    if (spec === undefined) throw new OutpostError('INPUT_INVALID', `model ${this.model.name} takes no image input`);
    const what = `input "${spec.input}"`;
    const batch = this.model.inputs.find((i) => i.name === spec.input)?.shape[0];
    if (images.length === 0 || images.length > MAX_IMAGES_PER_REQUEST) {
      throw new OutpostError(
        'INPUT_SHAPE_MISMATCH',
        `${what}: ${images.length} images; send 1 to ${MAX_IMAGES_PER_REQUEST}`,
      );
    }
    if (typeof batch === 'number' && batch !== images.length) {
      throw new OutpostError('INPUT_SHAPE_MISMATCH', `${what}: ${images.length} images, the model takes ${batch}`);
    }
    imageModule ??= import('../../pipeline/image.js');
    const { imageToTensor } = await imageModule;
    const tensors = await Promise.all(
      images.map((bytes, i) =>
        imageToTensor(bytes, spec).catch((error: unknown) => {
          const element = images.length > 1 ? ` image ${i}` : '';
          throw new OutpostError('INPUT_INVALID', `${what}${element}: ${messageOf(error)}`, {
            cause: error,
            details: isOutpostError(error) ? error.details : {},
          });
        }),
      ),
    );
    const [first] = tensors;
    if (first === undefined || tensors.length === 1) return first as TensorLike;
    const per = first.data.length;
    const data = spec.dtype === 'uint8' ? new Uint8Array(per * tensors.length) : new Float32Array(per * tensors.length);
    tensors.forEach((t, i) => data.set(t.data as ArrayLike<number>, i * per));
    return { data, dims: [tensors.length, ...first.dims.slice(1)], type: spec.dtype };
  }
}

/** `labels.txt`: line i names class i. A trailing newline adds no class; blank lines keep their index. */
async function readLabels(model: Model): Promise<string[] | undefined> {
  const file = model.manifest.pipeline.labels;
  if (file === undefined || model.artifactDir === undefined) return undefined;
  try {
    const lines = (await readFile(join(model.artifactDir, file), 'utf8')).split('\n').map((l) => l.replace(/\r$/, ''));
    if (lines[lines.length - 1] === '') lines.pop();
    return lines;
  } catch (error) {
    log.warn({ model: model.name, version: model.version, file, error: messageOf(error) }, 'labels unreadable');
    return undefined;
  }
}

const pipelines = new WeakMap<Model, Promise<ServingPipeline>>();

/** The model's serving pipeline, built on first use and shared by every request after. */
export function servingPipeline(model: Model): Promise<ServingPipeline> {
  let pipeline = pipelines.get(model);
  if (pipeline === undefined) {
    pipeline = readLabels(model).then((labels) => new ServingPipeline(model, labels));
    pipelines.set(model, pipeline);
  }
  return pipeline;
}
