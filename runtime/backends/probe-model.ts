/**
 * The model the native-backend probe runs in a child process (probe.ts). It is hand-made bytes rather than a
 * builder call because the runtime may not import the compiler (docs/architecture.md, "Who may import whom");
 * `test/runtime/probe.test.ts` decodes it, checks it field by field against the description below, and runs it.
 *
 * ModelProto (ir_version 7, producer "outpost", opset "" 13) with one graph "outpost-probe":
 *   y[1,4] = MatMul(x[1,4], W[4,4]), W a float32 initializer (raw_data, little-endian).
 * MatMul rather than an elementwise op on purpose: it goes through MLAS's SGEMM kernels, whose CPU-feature dispatch
 * is where a prebuilt binary meets an instruction its host lacks (SIGILL) — the other way besides a crash at load
 * that onnxruntime-node dies on an exotic arm64 host.
 */

/** W, row-major: each output mixes two inputs, so a wrong kernel cannot pass by returning the input. */
export const PROBE_WEIGHTS: readonly number[] = Object.freeze([1, 2, 0, 0, 0, 1, 2, 0, 0, 0, 1, 2, 2, 0, 0, 1]);
export const PROBE_INPUT: readonly number[] = Object.freeze([1, 2, 3, 4]);
/** x·W, exact in float32. */
export const PROBE_EXPECTED: readonly number[] = Object.freeze([9, 4, 7, 10]);
export const PROBE_INPUT_NAME = 'x';
export const PROBE_OUTPUT_NAME = 'y';
export const PROBE_DIMS: readonly number[] = Object.freeze([1, 4]);

// prettier-ignore
const BYTES = [
  8, 7, 18, 7, 111, 117, 116, 112, 111, 115, 116, 58, 153, 1, 10, 17, 10, 1, 120, 10, 1, 87, 18, 1, 121, 34, 6, 77,
  97, 116, 77, 117, 108, 18, 13, 111, 117, 116, 112, 111, 115, 116, 45, 112, 114, 111, 98, 101, 42, 75, 8, 4, 8, 4,
  16, 1, 66, 1, 87, 74, 64, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0,
  64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128,
  63, 90, 19, 10, 1, 120, 18, 14, 10, 12, 8, 1, 18, 8, 10, 2, 8, 1, 10, 2, 8, 4, 98, 19, 10, 1, 121, 18, 14, 10, 12, 8,
  1, 18, 8, 10, 2, 8, 1, 10, 2, 8, 4, 66, 4, 10, 0, 16, 13,
];

/** The serialised ModelProto (173 bytes). A fresh copy each call: callers may hand it to APIs that keep it. */
export function probeModelBytes(): Uint8Array {
  return Uint8Array.from(BYTES);
}
