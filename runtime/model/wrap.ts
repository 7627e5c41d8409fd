import type { KeyObject } from 'node:crypto';
import { basename, extname } from 'node:path';
import { writeArtifact, type WrittenArtifact } from '../artifact/write.js';
import { OutpostError } from '../errors.js';
import { loadModel } from './load.js';

/** File names a bare model may have (README: "a plain .onnx or .ort file works everywhere an artifact does"). */
export const BARE_MODEL_SUFFIXES: readonly string[] = Object.freeze(['.onnx', '.ort']);

export function isBareModelPath(path: string): boolean {
  return BARE_MODEL_SUFFIXES.includes(extname(path).toLowerCase());
}

export interface WrapOptions {
  /** ed25519 private key (KeyObject, PEM, or path): without it the artifact is unsigned. */
  readonly signingKey?: KeyObject | string;
}

/**
 * A plain `.onnx`/`.ort` file as a one-variant artifact in `outDir`: the manifest `loadModel` synthesizes for it
 * (inputs and outputs read by ONNX Runtime, target `any`), for what needs a real artifact on disk (`outpost deploy`).
 * Its version is derived from the model's bytes (`0.0.0+sha256.<12 hex>`) and nothing else in it varies, so the same
 * model always wraps to the same manifest: deploying it again is a redeploy, and a changed model is a new version
 * rather than a conflicting one (an installed version never changes on a device).
 */
export async function wrapBareModel(path: string, outDir: string, options: WrapOptions = {}): Promise<WrittenArtifact> {
  if (!isBareModelPath(path)) {
    throw new OutpostError(
      'INVALID_ARGUMENT',
      `${path} is not a bare model: expected ${BARE_MODEL_SUFFIXES.join(' or ')}`,
      {
        details: { path, accepted: BARE_MODEL_SUFFIXES },
      },
    );
  }
  const model = await loadModel(path, { warmup: 0, requireSignature: false });
  const synthesized = model.manifest;
  await model.release();
  const [variant] = synthesized.variants;
  if (variant === undefined) throw new OutpostError('INTERNAL', `${path}: the synthesized manifest has no variant`);
  const file = `variants/model.${variant.format}`; // the artifact layout, whatever the file was called
  return writeArtifact(outDir, {
    manifest: {
      name: synthesized.name,
      version: `0.0.0+sha256.${variant.sha256.slice(0, 12)}`,
      createdAt: synthesized.createdAt,
      target: synthesized.target,
      inputs: synthesized.inputs,
      outputs: synthesized.outputs,
      variants: [
        {
          id: variant.id,
          file,
          precision: variant.precision,
          format: variant.format,
          backends: variant.backends,
          rank: variant.rank,
        },
      ],
      selection: 'fixed',
      pipeline: synthesized.pipeline,
      producer: { outpost: 'wrapped', source: { file: basename(path), sha256: variant.sha256 } },
    },
    files: [{ path: file, from: path }],
    ...(options.signingKey === undefined ? {} : { signingKey: options.signingKey }),
  });
}
