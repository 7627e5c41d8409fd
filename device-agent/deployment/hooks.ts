import { spawn } from 'node:child_process';
import { OutpostError } from '../../runtime/errors.js';
import { logger } from '../../runtime/log.js';
import type { AgentConfig, HookName } from '../config.js';

const log = logger('agent.hooks');

export interface HookContext {
  readonly jobId: string;
  readonly model: string;
  readonly version: string;
  /** The version's directory (staged for before-install, installed after). */
  readonly dir: string;
  readonly previous?: string;
}

/** Keep the tail of a hook's output for the failure message; hooks can be chatty. */
const OUTPUT_TAIL = 2048; // bytes

/**
 * Runs a configured lifecycle hook (`beforeInstall`, `afterActivate`, `validate`), like CodeDeploy's lifecycle
 * event hooks: a shell command with the deployment in its environment, killed (its whole process group) at its
 * timeout. A non-zero exit or a timeout is HOOK_FAILED, which fails the deployment and rolls it back.
 */
export async function runHook(hooks: AgentConfig['hooks'], name: HookName, context: HookContext): Promise<void> {
  const hook = hooks[name];
  if (hook === undefined) return;
  const env = {
    ...process.env,
    OUTPOST_HOOK: name,
    OUTPOST_JOB_ID: context.jobId,
    OUTPOST_MODEL: context.model,
    OUTPOST_VERSION: context.version,
    OUTPOST_MODEL_DIR: context.dir,
    ...(context.previous === undefined ? {} : { OUTPOST_PREVIOUS_VERSION: context.previous }),
  };
  const started = Date.now();
  const result = await new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    output: string;
    timedOut: boolean;
  }>((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', hook.command], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // Negative pid: the hook's whole process group, so `sleep` children of the shell die too.
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, hook.timeoutSeconds * 1000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output, timedOut });
    });
  });
  const ms = Date.now() - started;
  if (result.timedOut) {
    throw new OutpostError('HOOK_FAILED', `${name} hook timed out after ${hook.timeoutSeconds} s: ${hook.command}`, {
      details: { hook: name, output: result.output },
    });
  }
  if (result.code !== 0) {
    const tail = result.output.trim().split('\n').slice(-3).join(' | ');
    throw new OutpostError(
      'HOOK_FAILED',
      `${name} hook exited ${result.code ?? result.signal ?? '?'}${tail ? `: ${tail}` : ''}`,
      {
        details: { hook: name, code: result.code, output: result.output },
      },
    );
  }
  log.info({ hook: name, ms }, 'hook passed');
}
