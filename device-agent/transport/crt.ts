import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { mqtt5 } from 'aws-iot-device-sdk-v2';
import { logger } from '../../runtime/log.js';

/** Workarounds for the AWS CRT (aws-crt 1.33, under aws-iot-device-sdk-v2 1.28), each naming what it works around. */

const log = logger('agent.transport');

/**
 * The CRT hands payloads over as an ArrayBuffer over its own memory, and an empty payload as a detached one (reading
 * it throws "Cannot perform Construct on a detached ArrayBuffer"). Copy into a Buffer we own.
 */
export function payloadBuffer(payload: mqtt5.Payload | undefined): Buffer {
  if (payload === undefined) return Buffer.alloc(0);
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (payload instanceof ArrayBuffer) {
    return payload.byteLength === 0 ? Buffer.alloc(0) : Buffer.from(new Uint8Array(payload));
  }
  if (ArrayBuffer.isView(payload)) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return Buffer.from(JSON.stringify(payload), 'utf8');
}

let collect: (() => void) | null | undefined;

/**
 * After `Mqtt5Client.close()` the CRT still holds Node's event loop open until the client's JS wrapper is garbage
 * collected: its threadsafe functions are released by the finalizer, not by close() (awslabs/aws-crt-nodejs#600,
 * open). An idle process may not collect for minutes, so a process that closed its transport would not exit. Once
 * the last reference is gone, one full collection lets it exit; without a way to collect, we say so.
 */
export function releaseClosedClient(): void {
  if (collect === undefined) collect = exposeGc();
  const gc = collect;
  if (gc === null) {
    log.debug('cannot force a GC; the process may stay alive until V8 collects the closed CRT client');
    return;
  }
  // After the caller's stack (which still references the client) has unwound.
  setImmediate(gc).unref();
}

function exposeGc(): (() => void) | null {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as () => void;
  try {
    // `--expose-gc` set at run time takes effect for contexts created afterwards: take `gc` from a fresh one.
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}
