/**
 * Activities that keep a remediation's memory on the node itself, because Temporal forgets closed
 * workflows: the fault episodes handled there (`fleetmedic.io/handled-episodes`, see k8s/episodes.ts)
 * and an operator's hold (`fleetmedic.io/hold`, see k8s/node-hold.ts). Each refuses a node of another
 * cluster (`WrongCluster`) and fails a missing node with non-retryable `NodeNotFound`.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import type { EpisodeVerdict } from '../domain/remediation-machine.js';
import { FailureType } from '../errors.js';
import { isApiError } from '../k8s/api-errors.js';
import {
  episodeVerdict,
  formatEpisodeRecord,
  parseEpisodeRecord,
  recordEpisodes as withEpisodes,
} from '../k8s/episodes.js';
import { formatHold, parseHold } from '../k8s/node-hold.js';
import { mergePatch } from '../k8s/patch.js';
import { EPISODES_ANNOTATION, HOLD_ANNOTATION } from '../k8s/remediation-labels.js';
import { objectName, text, validateInput } from './input.js';
import { nodeAccess, type KubernetesActivityDeps } from './kubernetes/node-access.js';

export interface CheckEpisodeInput {
  readonly node: string;
  /** The episode key, `<fingerprint>@<startsAt>` or a sender's opaque key. */
  readonly episode: string;
}

export interface CheckEpisodeResult {
  /** `unreadable`: the record on the node cannot be parsed, so nothing can be said (an operator fixes it). */
  readonly verdict: EpisodeVerdict;
}

export interface RecordEpisodesInput {
  readonly node: string;
  readonly episodes: readonly string[];
}

export interface RecordEpisodesResult {
  readonly node: string;
  /** False when the record already said exactly this. */
  readonly changed: boolean;
  /** Entries on the node after the call. */
  readonly entries: number;
}

export interface HoldNodeInput {
  readonly node: string;
  readonly workflowId: string;
  readonly runId: string;
  /** The operator who rejected the node. */
  readonly by: string;
  readonly reason: string;
}

export interface ClearHoldInput {
  readonly node: string;
}

export interface NodeRecordChange {
  readonly node: string;
  /** False when the node already was as asked (a retry). */
  readonly changed: boolean;
}

const episodeKey = text(1024);
const checkEpisodeSchema = z.object({ node: objectName, episode: episodeKey });
// The machine records at most its bounded episode list; the record keeps 64 anyway.
const recordEpisodesSchema = z.object({ node: objectName, episodes: z.array(episodeKey).min(1).max(256) });
const holdNodeSchema = z.object({
  node: objectName,
  workflowId: text(1000),
  runId: text(256),
  by: text(256),
  reason: text(1024),
});
const clearHoldSchema = z.object({ node: objectName });

/**
 * Creates the node record activities bound to one cluster (registered on the control worker; the
 * remediation runs `checkEpisode` as a local activity).
 *
 * @example
 * const records = createNodeRecordActivities({ kc, clusterId: 'lab-1' });
 * await records.checkEpisode({ node: 'gpu-node-7', episode: 'a1b2c3@2026-11-27T10:00:00Z' });
 */
export function createNodeRecordActivities(deps: KubernetesActivityDeps) {
  const access = nodeAccess(deps);

  /** Sets (or, with null, removes) one annotation: a merge patch of one key needs no precondition. */
  async function annotate(name: string, key: string, value: string | null): Promise<void> {
    try {
      await access.core.patchNode(
        { name, body: { metadata: { annotations: { [key]: value } } } },
        mergePatch,
      );
    } catch (err) {
      if (isApiError(err, 404))
        throw ApplicationFailure.nonRetryable(`node ${name} not found`, FailureType.NodeNotFound);
      access.fail(err, `updating node ${name}`);
    }
  }

  return {
    /**
     * Whether the fault episode was handled on the node before (`handled`: a re-sent alert, however
     * long after), from its handled-episodes record. A record that cannot be read answers
     * `unreadable`, never `new`.
     *
     * @throws non-retryable `InvalidInput`, `NodeNotFound`, `WrongCluster`, `Forbidden`.
     */
    async checkEpisode(input: CheckEpisodeInput): Promise<CheckEpisodeResult> {
      const { node, episode } = validateInput('checkEpisode', checkEpisodeSchema, input);
      const current = await access.requireNode(node);
      const record = parseEpisodeRecord(current.metadata?.annotations?.[EPISODES_ANNOTATION]);
      return { verdict: record.ok ? episodeVerdict(record.entries, episode) : 'unreadable' };
    },

    /**
     * Records episodes as handled on the node (one entry per fingerprint, bounded; see
     * `recordEpisodes` in k8s/episodes.ts), in an optimistic update: a node changed since the read
     * answers 409, which Temporal retries. A record in the first format is rewritten in the current one.
     *
     * @throws non-retryable `InvalidAnnotation` when the record on the node cannot be read (it is not
     *   overwritten: an operator looks at it first), `InvalidInput`, `NodeNotFound`, `WrongCluster`,
     *   `Forbidden`.
     */
    async recordEpisodes(input: RecordEpisodesInput): Promise<RecordEpisodesResult> {
      const { node, episodes } = validateInput('recordEpisodes', recordEpisodesSchema, input);
      const current = await access.requireNode(node);
      const raw = current.metadata?.annotations?.[EPISODES_ANNOTATION];
      const record = parseEpisodeRecord(raw);
      if (!record.ok) {
        throw ApplicationFailure.nonRetryable(
          `node ${node}: annotation ${EPISODES_ANNOTATION} is unreadable (${record.error}); fix or remove it by hand`,
          FailureType.InvalidAnnotation,
        );
      }
      const entries = withEpisodes(record.entries, episodes, access.now().toISOString());
      const value = formatEpisodeRecord(entries);
      if (value === raw) return { node, changed: false, entries: entries.length };
      const resourceVersion = current.metadata?.resourceVersion;
      // Without it the write would not be optimistic, and could drop another run's episodes.
      if (!resourceVersion) throw new Error(`node ${node} has no resourceVersion`);
      await access.patchNode(node, {
        metadata: { resourceVersion, annotations: { [EPISODES_ANNOTATION]: value } },
      });
      return { node, changed: true, entries: entries.length };
    },

    /**
     * Marks the node held by an operator's reject, so that a later run keeps it quarantined and
     * `releaseNode` refuses it. The same run's hold is kept as it is (a retry keeps its time); another
     * run's is replaced by this one.
     *
     * @throws non-retryable `InvalidInput`, `NodeNotFound`, `WrongCluster`, `Forbidden`.
     */
    async holdNode(input: HoldNodeInput): Promise<NodeRecordChange> {
      const { node, workflowId, runId, by, reason } = validateInput('holdNode', holdNodeSchema, input);
      const current = await access.requireNode(node);
      const existing = parseHold(current.metadata?.annotations?.[HOLD_ANNOTATION]);
      if (
        existing.kind === 'ok' &&
        existing.hold.workflowId === workflowId &&
        existing.hold.runId === runId &&
        existing.hold.by === by &&
        existing.hold.reason === reason
      ) {
        return { node, changed: false };
      }
      const at = access.now().toISOString();
      await annotate(node, HOLD_ANNOTATION, formatHold({ by, reason, at, workflowId, runId }));
      return { node, changed: true };
    },

    /**
     * Removes the hold (an operator released the node or marked it repaired), readable or not. A node
     * without one is left as it is.
     *
     * @throws non-retryable `InvalidInput`, `NodeNotFound`, `WrongCluster`, `Forbidden`.
     */
    async clearHold(input: ClearHoldInput): Promise<NodeRecordChange> {
      const { node } = validateInput('clearHold', clearHoldSchema, input);
      const current = await access.requireNode(node);
      if (current.metadata?.annotations?.[HOLD_ANNOTATION] === undefined) return { node, changed: false };
      await annotate(node, HOLD_ANNOTATION, null);
      return { node, changed: true };
    },
  };
}

/** The activities' type, for `proxyActivities<NodeRecordActivities>()` in workflows. */
export type NodeRecordActivities = ReturnType<typeof createNodeRecordActivities>;
