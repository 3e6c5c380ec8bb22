import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
      'NotOwner',
      'NotificationFailed',
      'QuarantinedByOther',
      'RebootDeadlineExceeded',
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

  it('hasErrorCode follows the cause chain', () => {
    const inner = new FleetmedicError(ErrorCode.StorageFull, 'disk full');
    const outer = new Error('copy failed', { cause: new Error('write failed', { cause: inner }) });
    assert.equal(hasErrorCode(outer, ErrorCode.StorageFull), true);
    assert.equal(hasErrorCode(outer, ErrorCode.StorageIo), false);
    assert.equal(hasErrorCode('not an error', ErrorCode.StorageFull), false);
  });
});
