/**
 * The evaluator process: runs models for the compiler (references, grading, probing inputs, latency, calibration)
 * so that a run that never ends or eats the machine can be killed without taking the compile with it
 * (evaluator.ts). Started by the compiler with an IPC channel; jobs arrive one at a time.
 */
import { isOutpostError, messageOf } from '../../runtime/errors.js';
import { runJob } from './jobs.js';
import type { ParentMessage, WorkerMessage } from './protocol.js';

function send(message: WorkerMessage): void {
  process.send?.(message);
}

let queue = Promise.resolve();

process.on('message', (message: ParentMessage) => {
  queue = queue.then(async () => {
    const step = async (sample: number, total: number): Promise<void> => {
      send({ type: 'step', id: message.id, sample, total });
      // Let the IPC write leave before a run blocks this thread (onnxruntime-node runs synchronously).
      await new Promise((resolve) => setImmediate(resolve));
    };
    try {
      send({ type: 'result', id: message.id, value: await runJob(message.job, step) });
    } catch (error) {
      send({
        type: 'error',
        id: message.id,
        code: isOutpostError(error) ? error.code : 'INFERENCE_FAILED',
        message: messageOf(error),
        details: isOutpostError(error) ? error.details : {},
      });
    }
  });
});

// The compile that started this process ended (or died): nothing is left to do.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
