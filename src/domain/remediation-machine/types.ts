/**
 * The data of the remediation state machine: its state, the events fed to it and the commands it
 * returns. Everything here is plain JSON, so a state survives continue-as-new as it is.
 */
import type { NotificationKind } from '../../notify/message.js';
import type { Admission, QuarantineVerdict } from '../fleet-budget.js';
import type { RemediationClass } from '../remediation-class.js';
import type { AlertSignal, RemediationPolicy, RepairPlan } from '../remediation-plan.js';
import type { DiagEvidence, TriageEvidence } from '../xid-classification.js';

/** The phase an operator, a search attribute and the Temporal UI see. */
export type RemediationPhase =
  | 'received'
  | 'restarting-pods'
  | 'quarantining'
  | 'triage'
  | 'waiting-for-budget'
  | 'waiting-for-capacity'
  | 'draining'
  | 'awaiting-approval'
  | 'repairing'
  | 'validating'
  | 'releasing'
  | 'quarantined'
  | 'done';

/**
 * How a run ended. Every end but `returned-to-service` and `released-by-operator` leaves the node as
 * the run found it: a run never ends with the node quarantined by it (a reject or a failure holds
 * the run open, in `quarantined`, until an operator acts).
 */
export type RemediationOutcome =
  | 'returned-to-service'
  | 'released-by-operator'
  | 'ignored'
  | 'duplicate-episode'
  | 'pods-restarted'
  | 'node-gone'
  | 'automation-blocked';

/** What an operator may do to a run; {@link actionsAllowed} says which apply now. */
export type OperatorAction = 'approve' | 'reject' | 'markRepaired' | 'release' | 'retry';

/** An operator's decision as the update carries it. */
export interface OperatorDecision {
  readonly action: OperatorAction;
  readonly by: string;
  readonly reason?: string;
}

/** A decision the machine accepted, with when. */
export interface RecordedDecision extends OperatorDecision {
  /** Milliseconds since the epoch. */
  readonly at: number;
}

/** The steps whose result the machine waits for; one runs at a time. */
export type ActivityKind =
  | 'checkEpisode'
  | 'restartPods'
  | 'quarantine'
  | 'triage'
  | 'requestSlot'
  | 'checkCapacity'
  | 'drain'
  | 'resetGpu'
  | 'readBootId'
  | 'reboot'
  | 'awaitBoot'
  | 'validate'
  | 'release';

/** Whether a fault episode (fingerprint + startsAt) was handled on the node before, as read from it. */
export type EpisodeVerdict = 'new' | 'handled' | 'unreadable';

/** The successful result of each activity. A deleted node is a failure of type `NodeNotFound`. */
export interface ActivityResults {
  readonly checkEpisode: { readonly verdict: EpisodeVerdict };
  readonly restartPods: { readonly restarted: number };
  readonly quarantine:
    | { readonly kind: 'duplicate-episode' }
    | { readonly kind: 'blocked'; readonly verdict: QuarantineVerdict }
    | {
        readonly kind: 'quarantined';
        /** The node's `nvidia.com/gpu` capacity, or null when it reports none. */
        readonly gpuCount: number | null;
        /** Someone else had cordoned the node before: release leaves it cordoned. */
        readonly preexistingCordon: boolean;
        /** Distinct nodes failed within the last minute (storm damping), when the budget said. */
        readonly recentFailures?: number;
        /** The episode record on the node could not be read (the node was cordoned regardless). */
        readonly episodes: 'new' | 'unreadable';
        /** A reject recorded on the node by an earlier run; only an operator clears it. */
        readonly hold: { readonly by: string; readonly reason: string } | null;
      };
  readonly triage: { readonly evidence: TriageEvidence };
  readonly requestSlot: { readonly admission: Admission };
  readonly checkCapacity: { readonly fits: boolean; readonly detail: string };
  readonly drain: { readonly evicted: number; readonly refused429: number };
  readonly resetGpu: { readonly gpu: number };
  /** The node's boot ID before the reboot; null in runs recorded before boots were checked. */
  readonly readBootId: { readonly bootId: string | null };
  /** The node already ran another boot than the one recorded: nothing was rebooted. */
  readonly reboot: { readonly alreadyRebooted: boolean };
  /** The node is back (Ready) with this boot ID, another than the one before the reboot. */
  readonly awaitBoot: { readonly bootId: string };
  readonly validate: { readonly diag: DiagEvidence };
  readonly release: { readonly leftCordoned: boolean };
}

/** An activity that failed after Temporal's retries, or with a non-retryable failure. */
export interface ActivityFailure {
  readonly failed: true;
  /** Non-retryable (`ApplicationFailure.nonRetryable`), as opposed to retries exhausted or a timeout. */
  readonly permanent: boolean;
  /** The failure's type: `NodeNotFound`, `DrainRefused`, `DrainDeadlineExceeded`, `NotOwner`, ... */
  readonly failureType?: string;
  readonly message: string;
  /** The node agent never picked the task up (schedule-to-start timeout). */
  readonly unreachable?: boolean;
}

/** The result of one activity, success or failure. */
export type ActivityOutcome = {
  readonly [K in ActivityKind]: {
    readonly type: 'result';
    readonly activity: K;
    readonly result: (ActivityResults[K] & { readonly failed?: false }) | ActivityFailure;
  };
}[ActivityKind];

/** What the workflow feeds the machine. */
export type MachineEvent =
  | { readonly type: 'alert'; readonly alert: AlertSignal }
  | ActivityOutcome
  | { readonly type: 'decision'; readonly decision: OperatorDecision }
  | { readonly type: 'timer'; readonly id: number }
  /** The fleet budget signalled that a drain slot is free for this node: ask again now. */
  | { readonly type: 'slot-free' }
  /** Temporal suggests continue-as-new; the machine asks for it at the next quiet moment. */
  | { readonly type: 'continue-as-new-suggested' }
  /** The first event of a run continued from a snapshot: timers are re-armed. */
  | { readonly type: 'resumed' };

/** Why a timer runs. */
export type TimerPurpose = 'storm-settle' | 'budget-retry' | 'capacity-retry' | 'operator-reminder';

/** A step the machine retries when an operator asks (`retry`) after it failed. */
export type RetryStep = 'quarantine' | 'drain' | 'reboot' | 'release';

/** Why the node stays quarantined while the run waits for an operator. */
export interface Hold {
  readonly kind:
    | 'rejected'
    | 'rejected-earlier'
    | 'episode-unreadable'
    | 'quarantine-failed'
    | 'drain-failed'
    | 'validation-failed'
    | 'reboot-unverified'
    | 'release-failed';
  readonly reason: string;
  /** The step `retry` runs again, or null when there is none to retry. */
  readonly retry: RetryStep | null;
  /** For `reboot-unverified`: the boot a retried reboot replaces (none if the node left it). */
  readonly bootIdBefore?: string;
}

/** An operator wait: when it began, reminders sent, and the reminder timer. */
export interface OperatorWait {
  readonly since: number;
  readonly reminders: number;
  readonly escalated: boolean;
  readonly timer: number;
}

/** A fault episode of this run: its key (fingerprint + startsAt) and the class of its alerts. */
export interface EpisodeRef {
  readonly key: string;
  readonly class: RemediationClass;
  /** The classification of its first alert, in words. */
  readonly reason: string;
}

/** Where the run is; the discriminant of {@link RemediationState}. */
export type Stage =
  | { readonly name: 'received' }
  | { readonly name: 'checking-episode'; readonly episode: string }
  | { readonly name: 'restarting-pods' }
  | { readonly name: 'quarantining'; readonly episode: string }
  | { readonly name: 'settling'; readonly timer: number; readonly failures: number }
  | { readonly name: 'triage' }
  | {
      readonly name: 'waiting-for-budget';
      /** A request is in flight (else a retry timer runs). */
      readonly asking: boolean;
      readonly timer: number | null;
      readonly detail: string | null;
      /** The budget signalled a free slot while a request was in flight: ask again at once. */
      readonly freeSignalled: boolean;
    }
  | {
      readonly name: 'waiting-for-capacity';
      readonly checking: boolean;
      readonly timer: number | null;
      /** Why the pods do not fit, once a check said so; approve (drain anyway) applies only then. */
      readonly unplaced: string | null;
    }
  | { readonly name: 'draining' }
  | { readonly name: 'awaiting-approval'; readonly plan: RepairPlan; readonly wait: OperatorWait }
  | {
      readonly name: 'repairing';
      readonly kind: 'reset' | 'reboot';
      /** GPUs still to reset, the one in flight first. */
      readonly remaining: readonly number[];
      /** The plan this repair carries out; a changed plan after it asks again. */
      readonly plan: RepairPlan;
      /**
       * A reboot's boot ID before it, recorded before the reboot is asked for (so a retried attempt
       * that sees another never reboots again): absent until read; null in runs recorded before
       * boots were checked (patch `reboot-boot-id`), whose reboot is verified by validation alone.
       */
      readonly bootIdBefore?: string | null;
      /** While waiting for the new boot: until when (ms since the epoch). */
      readonly bootDeadline?: number;
    }
  | { readonly name: 'validating'; readonly plan: RepairPlan | null }
  | { readonly name: 'releasing'; readonly byOperator: boolean }
  | { readonly name: 'held'; readonly hold: Hold; readonly wait: OperatorWait }
  | { readonly name: 'done'; readonly outcome: RemediationOutcome; readonly detail: string };

/** The name of a stage. */
export type StageName = Stage['name'];

/**
 * The whole state of one node's remediation: the stage (a discriminated union on `stage.name`) and
 * what every stage shares. Plain JSON, bounded in size, so it is the continue-as-new snapshot.
 */
export interface RemediationState {
  readonly version: 1;
  readonly node: string;
  readonly policy: RemediationPolicy;
  readonly stage: Stage;
  readonly class: RemediationClass | null;
  /** The alert that set the class, for search attributes. */
  readonly alertName: string | null;
  /** The episode whose check gates the quarantine: the one of the alert that set the class. */
  readonly episode: string | null;
  /** Every episode this run handles, recorded on the node when it ends (bounded). */
  readonly episodes: readonly EpisodeRef[];
  /** Episodes the node says were handled before: their re-sent alerts are counted, nothing more. */
  readonly handledEarlier: readonly string[];
  readonly gpus: readonly number[];
  readonly pods: readonly { readonly namespace: string; readonly name: string }[];
  readonly alerts: number;
  readonly resolvedAlerts: number;
  /** The node's GPU capacity, learnt with the quarantine. */
  readonly gpuCount: number | null;
  /** This run's quarantine is on the node. */
  readonly quarantined: boolean;
  readonly preexistingCordon: boolean;
  readonly slotHeld: boolean;
  readonly drained: boolean;
  /** A validation passed since the last repair (a reset, a reboot, or an operator's mark-repaired). */
  readonly validatedSinceRepair: boolean;
  /** The activity whose result the machine waits for. */
  readonly inFlight: ActivityKind | null;
  /** A decision accepted while an activity ran, applied when it returns. */
  readonly pending: RecordedDecision | null;
  readonly reasons: readonly string[];
  readonly decisions: readonly RecordedDecision[];
  readonly reminders: number;
  readonly timerSeq: number;
  readonly continueAsNewWanted: boolean;
}

/** What the workflow does for the machine. Activity commands are answered with a `result` event. */
export type Command =
  | { readonly type: 'checkEpisode'; readonly episode: string }
  | {
      readonly type: 'restartPods';
      readonly pods: readonly { readonly namespace: string; readonly name: string }[];
    }
  | { readonly type: 'quarantine'; readonly episode: string; readonly reason: string }
  | { readonly type: 'triage'; readonly expectedGpuCount: number | null }
  | { readonly type: 'requestSlot' }
  | { readonly type: 'checkCapacity' }
  | { readonly type: 'drain'; readonly deadlineSeconds: number }
  | { readonly type: 'resetGpu'; readonly gpu: number }
  | { readonly type: 'readBootId' }
  | { readonly type: 'reboot'; readonly bootIdBefore: string | null }
  | { readonly type: 'awaitBoot'; readonly bootIdBefore: string; readonly deadline: number }
  | { readonly type: 'validate'; readonly level: RemediationPolicy['diagLevel'] }
  | { readonly type: 'release' }
  /** Effects awaited in order, no result fed back (they retry until done). */
  | { readonly type: 'releaseSlot' }
  | { readonly type: 'recordRemediation' }
  | { readonly type: 'recordEpisodes'; readonly episodes: readonly string[] }
  | { readonly type: 'holdNode'; readonly by: string; readonly reason: string }
  | { readonly type: 'clearHold' }
  /** Runs beside the remediation; its failure never holds it up. */
  | {
      readonly type: 'notify';
      readonly kind: NotificationKind;
      readonly message: string;
      readonly reminder: number;
      readonly escalated: boolean;
    }
  /** Feed `{ type: 'timer', id }` after `ms`; a timer the machine no longer waits for is ignored. */
  | { readonly type: 'startTimer'; readonly id: number; readonly ms: number; readonly purpose: TimerPurpose }
  | { readonly type: 'continueAsNew'; readonly state: RemediationState }
  | { readonly type: 'finish'; readonly outcome: RemediationOutcome; readonly detail: string };

/** The commands that start an activity (answered by a `result` event of the same name). */
export type ActivityCommand = Extract<Command, { type: ActivityKind }>;

/** What {@link step} returns. */
export interface StepResult {
  readonly state: RemediationState;
  readonly commands: readonly Command[];
}
