import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FailureType, FleetmedicError, hasErrorCode } from '../src/errors.js';

// Workflow code matches on these strings and recorded histories carry them: a renamed value would make
// a replayed or running workflow take another path. The lists are written out on purpose.
describe('error taxonomy', () => {
  it('every failure type is its own name, and none is dropped or renamed', () => {
    for (const [key, value] of Object.entries(FailureType)) assert.equal(value, key);
    assert.deepEqual(Object.keys(FailureType).sort(), [
      'BootIdUnknown',
      'CheckpointRejected',
      'DrainDeadlineExceeded',
      'DrainRefused',
      'DrillDeadlineExceeded',
      'DrillProbeFailed',
      'DrillRecoveryTimeout',
      'EventRefused',
      'Forbidden',
      'GpuBusy',
      'InvalidAnnotation',
      'InvalidInput',
      'MultiplePodDisruptionBudgets',
      'NodeHeld',
      'NodeNotCordoned',
      'NodeNotFound',
      'NodeNotReadyForRelease',
      'NodeNotSchedulable',
      'NotDrillObject',
      'NotOwner',
      'NotificationFailed',
      'QuarantinedByOther',
      'RebootDeadlineExceeded',
      'RebootFailed',
      'RebootUnsupported',
      'ResetFailed',
      'RestartDeadlineExceeded',
      'SettingsNotRecorded',
      'Unauthorized',
      'WrongCluster',
      'WrongNode',
    ]);
  });

  it('error codes keep their values, and none is also a failure type', () => {
    assert.deepEqual(Object.values(ErrorCode).sort(), [
      'ADMIN_ENDPOINT',
      'CHECKPOINT_CORRUPT',
      'CHECKPOINT_SOURCE',
      'DCGMI_FAILED',
      'DCGM_UNREACHABLE',
      'GPU_TOOL_CANCELLED',
      'GPU_TOOL_NOT_STARTED',
      'GPU_TOOL_OUTPUT_TOO_LARGE',
      'GPU_TOOL_TIMEOUT',
      'MANIFEST_INVALID',
      'NO_VERIFIED_CHECKPOINT',
      'PARSE_ERROR',
      'SOURCE_CHANGED',
      'STORAGE_DENIED',
      'STORAGE_FULL',
      'STORAGE_IO',
      'VERIFY_COMMAND',
    ]);
    const types = new Set<string>(Object.values(FailureType));
    for (const code of Object.values(ErrorCode)) assert.ok(!types.has(code), code);
  });

  it('no source file spells a failure type as a string of its own, in either case (FailureType is the one place)', async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const spellings = new Map<string, string>();
    for (const type of Object.values(FailureType)) {
      spellings.set(type, type);
      spellings.set(type.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase(), type);
    }
    const found: string[] = [];
    for (const entry of await fs.readdir(path.join(root, 'src'), { recursive: true })) {
      const file = path.posix.join('src', entry.split(path.sep).join('/'));
      if (!file.endsWith('.ts') || file === 'src/errors.ts') continue;
      const text = await fs.readFile(path.join(root, file), 'utf8');
      for (const [literal, , word] of text.matchAll(/(['"])([A-Za-z_]+)\1/g)) {
        const type = spellings.get(word!);
        if (type && !NOT_FAILURE_TYPES.has(`${file} ${literal}`))
          found.push(`${file}: ${literal} (FailureType.${type})`);
      }
    }
    assert.deepEqual(found, []);
  });

  it('hasErrorCode follows the cause chain', () => {
    const inner = new FleetmedicError(ErrorCode.StorageFull, 'disk full');
    const outer = new Error('copy failed', { cause: new Error('write failed', { cause: inner }) });
    assert.equal(hasErrorCode(outer, ErrorCode.StorageFull), true);
    assert.equal(hasErrorCode(outer, ErrorCode.StorageIo), false);
    assert.equal(hasErrorCode('not an error', ErrorCode.StorageFull), false);
  });
});

/** String literals that read like a failure type but are not one, or are another team's to move. */
const NOT_FAILURE_TYPES = new Set([
  // A pod status reason of the process runner, in Kubernetes' vocabulary beside UnknownProcess, NoContainerPort.
  "src/runner/process-kinds.ts 'InvalidAnnotation'",
]);
