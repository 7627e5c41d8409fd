import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import { guardrailError, type GuardrailAlarm, type Guardrails } from './guardrails.js';

const log = logger('agent.bake');

export interface BakeOptions {
  readonly guardrails: Guardrails;
  readonly model: string;
  readonly version: string;
  /** The watch's length, for the alarm's and status's figures; seconds. */
  readonly windowSeconds: number;
  /** When the watch ends without an alarm: epoch ms, persisted, so a restarted agent watches only what is left. */
  readonly until: number;
  /** The agent stopping: the bake ends with DEPLOYMENT_INTERRUPTED and resumes on the next start. */
  readonly signal: AbortSignal;
}

const interrupted = (): OutpostError => new OutpostError('DEPLOYMENT_INTERRUPTED', 'agent stopping during bake');

/**
 * CodeDeploy's bake time with alarm rollback, on the device: watches `version`'s production calls until `until`.
 * Resolves when the window passes quietly; rejects with the alarm (GUARDRAIL_ERROR_RATE / GUARDRAIL_LATENCY, with
 * the counted calls, errors and p99 in its details) the moment a threshold is passed, so the deployment rolls back.
 */
export function bake(options: BakeOptions): Promise<void> {
  const { guardrails, model, version, until, signal, windowSeconds } = options;
  if (signal.aborted) return Promise.reject(interrupted());
  return new Promise<void>((resolve, reject) => {
    const left = Math.max(0, until - Date.now());
    const timer = setTimeout(() => {
      log.info({ model, version, stats: guardrails.report(model) }, 'bake passed');
      finish();
    }, left);
    const onAbort = (): void => finish(interrupted());
    function finish(error?: Error): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      guardrails.stop(model);
      if (error === undefined) resolve();
      else reject(error);
    }
    signal.addEventListener('abort', onAbort, { once: true });
    guardrails.watch(
      model,
      version,
      (alarm: GuardrailAlarm) => {
        log.warn({ model, version, code: alarm.code, stats: alarm.stats }, 'guardrail alarm: rolling back');
        finish(guardrailError(alarm));
      },
      windowSeconds,
    );
    log.info({ model, version, seconds: Math.round(left / 1000) }, 'baking: watching the new version');
  });
}
