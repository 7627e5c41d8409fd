import { createRequire } from 'node:module';

/**
 * The onnxruntime-node release installed beside this code, read from its package.json (loading the package would
 * load its native binary just to ask). Undefined where it is not installed.
 */
export function onnxruntimeVersion(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    return (require('onnxruntime-node/package.json') as { version?: string }).version;
  } catch {
    return undefined;
  }
}
