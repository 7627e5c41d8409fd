import { basename, extname } from 'node:path';
import { OutpostError } from '../errors.js';
import { SCHEMA_VERSION, type Manifest, type TensorSpec } from '../artifact/manifest.js';
import type { BackendSession, IOInfo } from '../backends/types.js';

function spec(info: IOInfo, model: string): TensorSpec {
  if (info.dtype === undefined) {
    throw new OutpostError('MODEL_UNSUPPORTED', `${model}: "${info.name}" is not a tensor of a supported type`, {
      details: { name: info.name },
    });
  }
  return { name: info.name, dtype: info.dtype, shape: [...info.shape] };
}

/**
 * A manifest for a plain `.onnx`/`.ort` file, read from the session ONNX Runtime created: so `inspect`, `run`,
 * `bench` and `serve` treat a bare model like a one-variant, unsigned artifact. Nothing in it was verified.
 */
export function synthesizeManifest(path: string, session: BackendSession, sha256: string, bytes: number): Manifest {
  const ext = extname(path);
  const file = basename(path);
  const name =
    basename(path, ext)
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/^[^A-Za-z0-9]+/, '') || 'model';
  return {
    schemaVersion: SCHEMA_VERSION,
    name,
    version: '0',
    createdAt: new Date(0).toISOString(),
    target: { profile: 'any', arch: 'any', features: [] },
    inputs: session.inputs.map((i) => spec(i, file)),
    outputs: session.outputs.map((o) => spec(o, file)),
    variants: [
      {
        id: 'model',
        file,
        precision: 'fp32',
        format: ext === '.ort' ? 'ort' : 'onnx',
        sha256,
        bytes,
        backends: ['native', 'wasm'],
        rank: 1,
      },
    ],
    selection: 'fixed',
    pipeline: { postprocess: [] },
    producer: { outpost: 'synthesized' },
    files: { [file]: { sha256, bytes } },
  };
}
