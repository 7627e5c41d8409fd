import { mkdir, writeFile } from 'node:fs/promises';
import { arch, platform } from 'node:os';
import { join } from 'node:path';
import { PROBE_EXPECTED } from '../../runtime/backends/probe-model.js';

/**
 * Stand-ins for onnxruntime-node, laid out as the real package is (`dist/index.js` beside `bin/napi-v6/<os>/<arch>/`),
 * each failing the way a broken native binding does. They are real modules run in real child processes; only what
 * they fail with is staged, because a binding that segfaults on this host cannot be had here (it does under qemu:
 * test/arm64/).
 */
export const FAKE_BINDINGS = Object.freeze({
  /** Dies by SIGSEGV while being loaded, as onnxruntime-node's arm64 binding does under qemu-user. */
  crash: `process.kill(process.pid, 'SIGSEGV');`,
  /** Throws while being loaded, as a binding built for another glibc does. */
  throws: `throw new Error('libonnxruntime.so.1: cannot open shared object file');`,
  /** Loads and runs, but computes garbage (a kernel miscompiled for the host's CPU). */
  wrong: fakeOrt(`new Float32Array(${PROBE_EXPECTED.length})`),
  /** Loads and never finishes the run. */
  hangs: `exports.InferenceSession = { create: () => new Promise(() => setInterval(() => {}, 1000)) };`,
  /** Computes the right answer without ONNX Runtime: a binding that works. */
  works: fakeOrt(`Float32Array.from(${JSON.stringify(PROBE_EXPECTED)})`),
});
export type FakeBinding = keyof typeof FAKE_BINDINGS;

function fakeOrt(output: string): string {
  return [
    'exports.Tensor = class { constructor(type, data, dims) { Object.assign(this, { type, data, dims }); } };',
    `exports.InferenceSession = { create: async () => ({ run: async () => ({ y: { data: ${output} } }) }) };`,
  ].join('\n');
}

export interface FakeModule {
  /** The module's entry, usable as `NativeBackendOptions.moduleId` and as a probe target's `entry`. */
  readonly entry: string;
  readonly bindingDir: string;
  /** The stand-in for the native binary: its size and mtime are the binary's identity. */
  readonly binary: string;
}

export async function writeFakeBinding(root: string, kind: FakeBinding): Promise<FakeModule> {
  const dir = join(root, `fake-ort-${kind}`);
  const entry = join(dir, 'dist', 'index.js');
  const bindingDir = join(dir, 'bin', 'napi-v6', platform(), arch());
  await mkdir(join(dir, 'dist'), { recursive: true });
  await mkdir(bindingDir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: `fake-ort-${kind}`, main: 'dist/index.js' }));
  await writeFile(entry, `'use strict';\n${FAKE_BINDINGS[kind]}\n`);
  const binary = join(bindingDir, 'onnxruntime_binding.node');
  await writeFile(binary, 'not really a shared object');
  return { entry, bindingDir, binary };
}
