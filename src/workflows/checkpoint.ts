import {
  ApplicationFailure,
  defineQuery,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { CheckpointActivities } from '../activities/checkpoint.js';
import { backupBaseName } from '../checkpoint/names.js';
import {
  checkpointBackupInputProblems,
  checkpointFormatOf,
  DEFAULT_ADMIN_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_KEEP,
  DEFAULT_STALE_AFTER_MS,
  type CheckpointBackupInput,
  type CheckpointBackupResult,
  type CheckpointBackupStatus,
  type RetentionSummary,
} from '../checkpoint/types.js';
import { OUTCOME, PHASE } from '../contracts/search-attributes.js';
import { FailureType } from '../errors.js';

/** Where a backup run is; answered while it runs and after it ends. */
export const checkpointBackupStatusQuery = defineQuery<CheckpointBackupStatus>('checkpointBackupStatus');

/**
 * One checkpoint backup, run by a Temporal Schedule (overlap policy skip) in place of the seed's CronJob:
 * acquire a checkpoint (admin call to the model server, the newest file, or a llama-server slot save)
 * -> copy it into backup storage atomically, hashing it on the way -> read it back and verify it (size,
 * sha256, the format's structure: zip and CRC-32s and PyTorch layout, GGUF header, or slot layout; the
 * user's command) -> write its manifest -> apply retention.
 * A checkpoint that fails verification is never promoted: its manifest records the failure, its data is
 * removed, and the run fails with type `CheckpointRejected` so the schedule's history shows it.
 *
 * @param input see {@link CheckpointBackupInput}; invalid input fails at once with type `InvalidInput`.
 */
export async function checkpointBackupWorkflow(
  input: CheckpointBackupInput,
): Promise<CheckpointBackupResult> {
  const problems = checkpointBackupInputProblems(input);
  if (problems.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `invalid checkpoint backup input: ${problems.join('; ')}`,
      FailureType.InvalidInput,
    );
  }
  const status: { -readonly [K in keyof CheckpointBackupStatus]: CheckpointBackupStatus[K] } = {
    phase: 'acquire',
  };
  setHandler(checkpointBackupStatusQuery, () => ({ ...status }));
  const phase = (next: CheckpointBackupStatus['phase'], details: string): void => {
    status.phase = next;
    upsertSearchAttributes([{ key: PHASE, value: `checkpoint-${next}` }]);
    setCurrentDetails(`**${next}**: ${details}`);
  };

  const info = workflowInfo();
  // Workflow time is deterministic on replay, so the backup's name and timestamp are too.
  const createdAt = new Date();
  const format = checkpointFormatOf(input);
  // Only a format other than torch adds fields, so torch runs schedule exactly what they always did.
  const formatField = format === 'torch' ? {} : { format };
  const baseName = backupBaseName(createdAt, info.runId, format);
  const keep = input.keep ?? DEFAULT_KEEP;
  const staleAfterMs = input.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const heartbeatTimeout = input.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
  const retry = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 };
  const short: ActivityOptions = { startToCloseTimeout: '2m', retry };
  const long: ActivityOptions = { startToCloseTimeout: '6h', heartbeatTimeout, retry };
  const acquireTimeoutMs =
    (input.source.kind === 'newest-file' ? 0 : (input.source.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS)) + 60_000;

  const retention = async (protect: string[]): Promise<RetentionSummary> => {
    const { applyCheckpointRetention } = proxyActivities<CheckpointActivities>({
      ...short,
      summary: `keep the newest ${keep} verified backups`,
    });
    return applyCheckpointRetention({ keep, staleAfterMs, protect });
  };

  const sourceLabel =
    input.source.kind === 'admin-endpoint'
      ? input.source.url
      : input.source.kind === 'llama-slot'
        ? `${input.source.url} slot ${input.source.slot}`
        : input.source.directory;
  phase('acquire', `checkpoint from ${sourceLabel}`);
  const { acquireCheckpoint } = proxyActivities<CheckpointActivities>({
    startToCloseTimeout: acquireTimeoutMs,
    retry,
    summary: `checkpoint from ${sourceLabel}`,
  });
  const { candidate, unchangedFrom } = await acquireCheckpoint({
    source: input.source,
    skipUnchanged: input.skipUnchanged ?? true,
    ...formatField,
    ...(input.source.kind === 'llama-slot' && { staleAfterMs }),
  });
  status.sourcePath = candidate.path;

  if (unchangedFrom) {
    phase('retention', `${candidate.path} unchanged since ${unchangedFrom.name}`);
    const kept = await retention([unchangedFrom.name]);
    phase('done', `unchanged: ${unchangedFrom.name} already holds ${candidate.path}`);
    upsertSearchAttributes([{ key: OUTCOME, value: 'checkpoint-unchanged' }]);
    return {
      outcome: 'unchanged',
      name: unchangedFrom.name,
      location: unchangedFrom.location,
      size: unchangedFrom.size,
      sha256: unchangedFrom.sha256,
      sourcePath: candidate.path,
      retention: kept,
    };
  }

  phase('copy', `${candidate.path} (${candidate.size} bytes) -> ${baseName}`);
  const { copyCheckpointToBackup } = proxyActivities<CheckpointActivities>({
    ...long,
    summary: `copy ${candidate.path} -> ${baseName}`,
  });
  const copy = await copyCheckpointToBackup({ sourcePath: candidate.path, baseName });
  status.name = copy.name;

  const structure = { torch: 'zip structure, CRC-32s', gguf: 'GGUF header', 'llama-slot': 'slot layout' };
  phase('verify', `${copy.name}: size, sha256 ${copy.sha256.slice(0, 12)}, ${structure[format]}`);
  const { verifyCheckpointBackup } = proxyActivities<CheckpointActivities>({
    ...long,
    summary: `verify ${copy.name}`,
  });
  const verdict = await verifyCheckpointBackup({
    copy,
    sourceSha256: candidate.sha256,
    ...(input.verifier !== undefined && { verifier: input.verifier }),
    requireTorchLayout: input.requireTorchLayout ?? true,
    ...formatField,
  });

  phase('manifest', `${copy.name}: verified=${verdict.ok}`);
  const { writeCheckpointManifest, discardCheckpointBackup } = proxyActivities<CheckpointActivities>(short);
  await writeCheckpointManifest({
    ...formatField,
    copy,
    candidate,
    verdict,
    createdAt: createdAt.toISOString(),
    workflow: { workflowId: info.workflowId, runId: info.runId },
  });

  if (!verdict.ok) {
    status.failure = verdict.failure.message;
    await discardCheckpointBackup({ name: copy.name });
    try {
      await retention([]);
    } catch (err) {
      log.warn('retention after a rejected checkpoint failed', { error: String(err) });
    }
    phase('rejected', verdict.failure.message);
    upsertSearchAttributes([{ key: OUTCOME, value: 'checkpoint-rejected' }]);
    throw ApplicationFailure.nonRetryable(
      `checkpoint ${copy.source.path} failed verification and was not promoted: ${verdict.failure.message}`,
      FailureType.CheckpointRejected,
      { name: copy.name, failure: verdict.failure, checks: verdict.checks },
    );
  }

  phase('retention', `keep the newest ${keep} verified backups`);
  const kept = await retention([copy.name]);
  phase('done', `${copy.name}: ${copy.size} bytes, sha256 ${copy.sha256}`);
  upsertSearchAttributes([{ key: OUTCOME, value: 'checkpoint-backed-up' }]);
  return {
    outcome: 'backed-up',
    name: copy.name,
    location: copy.location,
    size: copy.size,
    sha256: copy.sha256,
    sourcePath: copy.source.path,
    retention: kept,
  };
}
