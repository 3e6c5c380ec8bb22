/**
 * fleetmedic's error taxonomy, in one place:
 *
 * - {@link FailureType}: the `ApplicationFailure.type` of every failure an activity, or a workflow,
 *   raises on purpose. Workflow code matches on these strings and histories record them: a value
 *   never changes.
 * - {@link ErrorCode}: the stable `code` of the {@link FleetmedicError}s of the GPU tools and the
 *   checkpoint procedure, which become failure types at their activity boundary.
 * - The error classes. Every error the product raises on purpose is a {@link FleetmedicError} with a
 *   stable `code`, so callers (CLI, activities, webhook) can decide what to do without parsing
 *   messages. Activities turn {@link FleetmedicError.permanent} errors into non-retryable Temporal
 *   failures.
 */

/** `ApplicationFailure.type` of the failures fleetmedic's activities and workflows raise on purpose. */
export const FailureType = {
  // Input and cluster, every activity.
  /** The input (or a selector in it) is invalid; the message names the field (non-retryable). */
  InvalidInput: 'InvalidInput',
  /** The node, or the run's cluster, is another cluster's than this worker's (non-retryable). */
  WrongCluster: 'WrongCluster',

  // Kubernetes (activities/kubernetes, node-records, quarantine, fleet-budget-records).
  /** The node does not exist (non-retryable). */
  NodeNotFound: 'NodeNotFound',
  /** RBAC denied the call; the message is the API server's (non-retryable). */
  Forbidden: 'Forbidden',
  /** The credentials were rejected (non-retryable: the same credentials will be rejected again). */
  Unauthorized: 'Unauthorized',
  /** Another workflow quarantined the node (non-retryable). */
  QuarantinedByOther: 'QuarantinedByOther',
  /** Release asked by a workflow that does not own the quarantine (non-retryable). */
  NotOwner: 'NotOwner',
  /** An operator's hold (a reject) is on the node: only an operator clears it (non-retryable). */
  NodeHeld: 'NodeHeld',
  /** A fleetmedic annotation on the node cannot be read; an operator must fix it (non-retryable). */
  InvalidAnnotation: 'InvalidAnnotation',
  /** The node is not ready to return to service yet (retryable; the message says what is missing). */
  NodeNotReadyForRelease: 'NodeNotReadyForRelease',
  /** A drain of a node that is not cordoned would see its pods rescheduled onto it (non-retryable). */
  NodeNotCordoned: 'NodeNotCordoned',
  /** Pods need `force` / `deleteEmptyDirData`; nothing was evicted (non-retryable). */
  DrainRefused: 'DrainRefused',
  /** The drain deadline passed; the failure lists the pods left (non-retryable: escalate). */
  DrainDeadlineExceeded: 'DrainDeadlineExceeded',
  /** restartPods could not evict its pods before its deadline (non-retryable: escalate). */
  RestartDeadlineExceeded: 'RestartDeadlineExceeded',
  /** A pod is covered by several PodDisruptionBudgets, which the Eviction API refuses (non-retryable). */
  MultiplePodDisruptionBudgets: 'MultiplePodDisruptionBudgets',

  // Node agent (activities/node-agent.ts).
  /** The agent was asked to act for another node or cluster (non-retryable). */
  WrongNode: 'WrongNode',
  /** A process may hold the GPU, so it cannot be reset (non-retryable). */
  GpuBusy: 'GpuBusy',
  /** The GPU reset, or stopping or starting a reset holder around it, failed (non-retryable). */
  ResetFailed: 'ResetFailed',
  /** This agent cannot reboot its node (non-retryable). */
  RebootUnsupported: 'RebootUnsupported',
  /**
   * The agent's reboot command failed or timed out (non-retryable: it may have rebooted after all,
   * and a reboot is never repeated blindly; an operator looks).
   */
  RebootFailed: 'RebootFailed',
  /** The node reports no boot ID (`status.nodeInfo.bootID`), so a reboot cannot be verified (non-retryable). */
  BootIdUnknown: 'BootIdUnknown',
  /** The node did not come back with a new boot ID before the reboot's deadline (non-retryable). */
  RebootDeadlineExceeded: 'RebootDeadlineExceeded',

  // Observability (activities/observability.ts).
  /** A notification sink failed (retryable unless every failure is permanent). */
  NotificationFailed: 'NotificationFailed',
  /** The API server refused a phase Event (non-retryable). */
  EventRefused: 'EventRefused',

  // Workflows: raised by workflow code itself (a run's or an update's failure), never by an activity.
  /**
   * A checkpoint failed verification and was not promoted: the backup run fails with this type, its
   * manifest records the failure (workflows/checkpoint.ts; non-retryable).
   */
  CheckpointRejected: 'CheckpointRejected',
  /**
   * An operator's action on the fleet budget (pause, resume, breaker reset) applies to the running
   * budget, but its settings object could not be written, so a restarted budget would not know it:
   * the update fails with this type and the operator repeats it (workflows/fleet-budget.ts).
   */
  SettingsNotRecorded: 'SettingsNotRecorded',

  // Resilience drill (activities/drill, workflows/drill; contracts/drill.ts names them for the drill).
  /** The replacement of a disrupted replica did not turn Ready in time (non-retryable). */
  DrillRecoveryTimeout: 'DrillRecoveryTimeout',
  /** The object is not one this drill created: restore never deletes it (non-retryable). */
  NotDrillObject: 'NotDrillObject',
  /** The drill's own deadline passed; it rolled back (non-retryable). */
  DrillDeadlineExceeded: 'DrillDeadlineExceeded',
  /** The probe process could not be started or did not write (non-retryable). */
  DrillProbeFailed: 'DrillProbeFailed',
  /** The node the drill would cordon is already cordoned or not Ready (non-retryable). */
  NodeNotSchedulable: 'NodeNotSchedulable',
} as const;

/** One of the {@link FailureType} values. */
export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/**
 * Stable {@link FleetmedicError} codes that reach Temporal as failure types: a node agent's permanent
 * GPU tool error, a checkpoint activity's error (see activities/checkpoint.ts).
 */
export const ErrorCode = {
  // GPU tools (gpu/command-runner.ts, gpu/dcgmi.ts, gpu/nvidia-smi.ts). GPU_TOOL_*: the tool gave no
  // result to interpret (never a finding about the GPU itself).
  /** A GPU tool ran past its timeout and was killed (retryable). */
  GpuToolTimedOut: 'GPU_TOOL_TIMEOUT',
  /** A GPU tool was cancelled with its activity. */
  GpuToolCancelled: 'GPU_TOOL_CANCELLED',
  /** A GPU tool printed more than its limit and was killed (permanent). */
  GpuToolOutputTooLarge: 'GPU_TOOL_OUTPUT_TOO_LARGE',
  /** A GPU tool gave no result: it could not start (missing, not executable) or a signal killed it (retryable). */
  GpuToolNotStarted: 'GPU_TOOL_NOT_STARTED',
  /** A GPU tool printed what fleetmedic cannot read (permanent). */
  ParseError: 'PARSE_ERROR',
  /** The DCGM host engine is not reachable (retryable). */
  DcgmUnreachable: 'DCGM_UNREACHABLE',
  /** `dcgmi` failed with an exit code fleetmedic does not know (retryable). */
  DcgmiFailed: 'DCGMI_FAILED',

  // Checkpoint backup and restore (checkpoint/errors.ts).
  CheckpointCorrupt: 'CHECKPOINT_CORRUPT',
  CheckpointSource: 'CHECKPOINT_SOURCE',
  SourceChanged: 'SOURCE_CHANGED',
  StorageFull: 'STORAGE_FULL',
  StorageDenied: 'STORAGE_DENIED',
  StorageIo: 'STORAGE_IO',
  NoVerifiedCheckpoint: 'NO_VERIFIED_CHECKPOINT',
  AdminEndpoint: 'ADMIN_ENDPOINT',
  VerifyCommand: 'VERIFY_COMMAND',
  ManifestInvalid: 'MANIFEST_INVALID',
} as const;

/**
 * The codes of checkpoint errors (see {@link ErrorCode}). Invalid input is
 * {@link FailureType.InvalidInput}, as for every other activity.
 */
export type CheckpointErrorCode =
  | (typeof ErrorCode)[
      | 'CheckpointCorrupt'
      | 'CheckpointSource'
      | 'SourceChanged'
      | 'StorageFull'
      | 'StorageDenied'
      | 'StorageIo'
      | 'NoVerifiedCheckpoint'
      | 'AdminEndpoint'
      | 'VerifyCommand'
      | 'ManifestInvalid']
  | typeof FailureType.InvalidInput;

export class FleetmedicError extends Error {
  /** A stable, machine-readable code, e.g. `PORT_IN_USE`. */
  readonly code: string;
  /** True when retrying cannot help (bad input, missing permission, unknown object). */
  readonly permanent: boolean;

  constructor(code: string, message: string, options: { permanent?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.permanent = options.permanent ?? true;
  }
}

/** Invalid configuration: names the variable (or flag), the value received and what was expected. */
export class ConfigError extends FleetmedicError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CONFIG_INVALID', message, { permanent: true, ...options });
  }
}

/** A required tool is missing, broken, or reports the wrong version. */
export class ToolchainError extends FleetmedicError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('TOOLCHAIN', message, { permanent: true, ...options });
  }
}

/** A component of the embedded stack could not bind its port because something else holds it. */
export class PortInUseError extends FleetmedicError {
  constructor(
    readonly component: string,
    readonly port: number,
    readonly host = '127.0.0.1',
  ) {
    super('PORT_IN_USE', `${component}: port ${host}:${port} is already in use by another process`, {
      permanent: true,
    });
  }
}

/** The embedded stack failed to start, stop, or become ready. */
export class StackError extends FleetmedicError {
  constructor(message: string, options: { cause?: unknown; permanent?: boolean } = {}) {
    super('STACK', message, { permanent: options.permanent ?? true, cause: options.cause });
  }
}

/**
 * A simulation-only action was asked of a cluster that does not carry fleetmedic's simulation marker.
 * Stand-in GPU tools and fault injection must never act on a real fleet.
 */
export class NotSimulatedError extends FleetmedicError {
  constructor(message: string) {
    super('NOT_SIMULATED', message, { permanent: true });
  }
}

/** A client in simulated mode was asked to dial an address outside 127.0.0.0/8. */
export class NonLoopbackAddressError extends FleetmedicError {
  /** @param message - the whole message, when the default (a pod address) does not fit. */
  constructor(
    readonly address: string,
    message?: string,
  ) {
    super(
      'NON_LOOPBACK_ADDRESS',
      message ??
        `refusing to connect to ${address}: in simulated mode every pod address must be in 127.0.0.0/8`,
      { permanent: true },
    );
  }
}

/** True when `err`, or any error in its `cause` chain, is a FleetmedicError with the given code. */
export function hasErrorCode(err: unknown, code: string): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof FleetmedicError && e.code === code) return true;
  }
  return false;
}
