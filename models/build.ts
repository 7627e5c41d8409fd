/**
 * Writes the sample models to models/build/ (or the directory given): `npm run models [-- <dir>]`.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { saveModel } from '../compiler/onnx/index.js';
import { SAMPLES } from './samples.js';

export async function buildSamples(dir: string): Promise<Record<keyof typeof SAMPLES, string>> {
  await mkdir(dir, { recursive: true });
  const paths = {} as Record<keyof typeof SAMPLES, string>;
  for (const [key, build] of Object.entries(SAMPLES) as [
    keyof typeof SAMPLES,
    () => { proto: Parameters<typeof saveModel>[0] },
  ][]) {
    const path = join(dir, `${key}.onnx`);
    await saveModel(build().proto, path);
    paths[key] = path;
  }
  return paths;
}

// Run as a script (`tsx models/build.ts`), not when bundled into the CLI.
if (/models[/\\]build\.ts$/.test(process.argv[1] ?? '')) {
  const dir = process.argv[2] ?? join(import.meta.dirname, 'build');
  for (const [name, path] of Object.entries(await buildSamples(dir))) console.log(`${name}: ${path}`);
}
