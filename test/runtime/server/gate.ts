import { BackendRegistry, NativeBackend, type Backend } from '../../../runtime/backends/index.js';
import type { BackendSession } from '../../../runtime/backends/types.js';
import { loadModel } from '../../../runtime/model/load.js';
import type { Model } from '../../../runtime/model/model.js';

/**
 * Holds inference runs until the test opens it: a request can be kept "in inference" for exactly as long as a test
 * needs (overload, a client leaving mid-inference) without guessing how long a model takes.
 */
export class Gate {
  private shut = true;
  private readonly waiters: (() => void)[] = [];
  /** Runs that reached the gate so far (each one runs the model once it passes). */
  runs = 0;

  /** Runs waiting at the gate now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Later runs wait again. */
  close(): void {
    this.shut = true;
  }

  /** Lets every waiting run through, and later ones pass until close(). */
  open(): void {
    this.shut = false;
    for (const wake of this.waiters.splice(0)) wake();
  }

  pass(): Promise<void> {
    this.runs++;
    return this.shut ? new Promise((resolve) => this.waiters.push(resolve)) : Promise.resolve();
  }
}

/**
 * Test double, registered through the backend registry like any backend: the real native engine (real sessions,
 * real answers) whose runs first wait at `gate`.
 */
function gatedNative(gate: Gate): Backend {
  const real = new NativeBackend();
  return {
    name: 'native',
    get version() {
      return real.version;
    },
    init: () => real.init(),
    createSession: async (model, config): Promise<BackendSession> => {
      const session = await real.createSession(model, config);
      return {
        backend: session.backend,
        inputs: session.inputs,
        outputs: session.outputs,
        tensor: (dtype, data, dims) => session.tensor(dtype, data, dims),
        run: async (feeds) => {
          await gate.pass();
          return session.run(feeds);
        },
        release: () => session.release(),
      };
    },
  };
}

/** Loads `path` on the gated native engine (no warm-up: it would wait at the gate). */
export function loadGated(path: string, gate: Gate): Promise<Model> {
  return loadModel(path, { registry: new BackendRegistry().register(gatedNative(gate), 1), warmup: 0 });
}
