import { NativeBackend } from './native.js';
import { BackendRegistry } from './registry.js';
import { WasmBackend } from './wasm.js';

export { BackendRegistry, type ResolvedBackend } from './registry.js';
export { NativeBackend, type NativeBackendOptions } from './native.js';
export { WasmBackend, type WasmBackendOptions } from './wasm.js';
export type { Backend, BackendName, BackendSession, IOInfo, SessionConfig, TensorValue } from './types.js';

/** Native first, WASM as the fallback. */
export const BACKEND_PRIORITY = Object.freeze({ native: 100, wasm: 10 } as const);

let defaultRegistry: BackendRegistry | undefined;

/** The process-wide registry with the two shipped backends; tests build their own. */
export function backends(): BackendRegistry {
  defaultRegistry ??= new BackendRegistry()
    .register(new NativeBackend(), BACKEND_PRIORITY.native)
    .register(new WasmBackend(), BACKEND_PRIORITY.wasm);
  return defaultRegistry;
}
