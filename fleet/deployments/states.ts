import { OutpostError } from '../../runtime/errors.js';
import type { DeploymentState } from '../store/index.js';

/**
 * A deployment's life, on one screen. ACTIVE: executions are being handed out (wave by wave under a rollout);
 * COMPLETED: every execution reached a terminal status (IoT Jobs' job status COMPLETED); CANCELED: the operator
 * stopped it, and what had not ended was canceled; ABORTED: its abort criteria tripped (or a wave ended unhealthy),
 * what had not started was canceled, and the devices that had switched are rolled back. Every move is a conditional
 * update.
 */
export const DEPLOYMENT_TRANSITIONS: Readonly<Record<DeploymentState, readonly DeploymentState[]>> = Object.freeze({
  ACTIVE: Object.freeze(['COMPLETED', 'CANCELED', 'ABORTED'] as const),
  COMPLETED: Object.freeze([]),
  CANCELED: Object.freeze([]),
  ABORTED: Object.freeze([]),
});

export function canMove(from: DeploymentState, to: DeploymentState): boolean {
  return DEPLOYMENT_TRANSITIONS[from].includes(to);
}

export function checkMove(id: string, from: DeploymentState, to: DeploymentState): void {
  if (!canMove(from, to)) {
    throw new OutpostError('INVALID_ARGUMENT', `deployment ${id} is ${from}; it cannot become ${to}`, {
      details: { id, state: from, wanted: to, allowed: DEPLOYMENT_TRANSITIONS[from] },
    });
  }
}
