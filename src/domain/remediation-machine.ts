/**
 * The GPU remediation of one node as a pure state machine (see docs/remediation.md and DESIGN.md,
 * "The remediation as a state machine"). The workflow feeds it events (alerts, activity results,
 * operator decisions, timers, drain-slot signals) and runs the commands it returns; everything an
 * operator sees (phase, reason, what it waits for, the decisions that apply) is computed from its
 * state by {@link view}.
 *
 * The driver runs a step's commands in order: an activity command ({@link isActivityCommand}; one
 * at a time) is answered later by a `result` event; `releaseSlot`, `recordRemediation`,
 * `recordEpisodes`, `holdNode` and `clearHold` are awaited effects with no result; `notify` runs in
 * the background; `startTimer` feeds `{ type: 'timer', id }` after `ms`; `continueAsNew` (after
 * the handlers finish) starts the next run with its state, which is fed `{ type: 'resumed' }` first;
 * `finish` ends the run. Update validators are {@link validateDecision}.
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

// A record, so that the compiler finds a kind added to `ActivityKind` and missing here.
const ACTIVITIES: Readonly<Record<ActivityKind, true>> = {
  checkEpisode: true,
  restartPods: true,
  quarantine: true,
  triage: true,
  requestSlot: true,
  checkCapacity: true,
  drain: true,
  resetGpu: true,
  readBootId: true,
  reboot: true,
  awaitBoot: true,
  validate: true,
  release: true,
};

/** The commands answered by a `result` event (one runs at a time). */
export const ACTIVITY_KINDS = Object.freeze(Object.keys(ACTIVITIES) as ActivityKind[]);

/** True when the command starts an activity whose result the machine waits for. */
export function isActivityCommand(command: Command): command is Extract<Command, { type: ActivityKind }> {
  return Object.prototype.hasOwnProperty.call(ACTIVITIES, command.type);
}
