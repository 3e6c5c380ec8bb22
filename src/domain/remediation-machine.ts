/**
 * The GPU remediation of one node as a pure state machine (see docs/remediation.md and DESIGN.md,
 * "The remediation as a state machine"). The workflow feeds it events (alerts, activity results,
 * operator decisions, timers, drain-slot signals) and runs the commands it returns; everything an
 * operator sees (phase, reason, what it waits for, the decisions that apply) is computed from its
 * state by {@link view}.
 *
 * @example
 * let state = initialState('gpu-7', DEFAULT_REMEDIATION_POLICY);
 * const { state: next, commands } = step(state, { type: 'alert', alert }, Date.now());
 * // commands: [{ type: 'quarantine', ... }]; run it, then feed { type: 'result', activity: 'quarantine', result }
 */
import type { ActivityKind, Command } from './remediation-machine/types.js';

export * from './remediation-machine/types.js';
export { initialState, step } from './remediation-machine/step.js';
export { STATE_LIMITS } from './remediation-machine/tx.js';
export {
  actionsAllowed,
  formatWait,
  phaseOf,
  validateDecision,
  view,
  type RemediationView,
} from './remediation-machine/view.js';

/** The commands answered by a `result` event (one runs at a time). */
export const ACTIVITY_KINDS: readonly ActivityKind[] = [
  'checkEpisode',
  'restartPods',
  'quarantine',
  'triage',
  'requestSlot',
  'checkCapacity',
  'drain',
  'resetGpu',
  'reboot',
  'validate',
  'release',
];

/** True when the command starts an activity whose result the machine waits for. */
export function isActivityCommand(command: Command): command is Extract<Command, { type: ActivityKind }> {
  return (ACTIVITY_KINDS as readonly string[]).includes(command.type);
}
