import { execa, parseCommandString } from 'execa';
import { ErrorCode } from '../errors.js';
import { CheckpointError } from './errors.js';
import { DEFAULT_VERIFY_COMMAND_TIMEOUT_MS } from './types.js';

/** Outcome of the user's verify command. */
export interface VerifyCommandResult {
  readonly ok: boolean;
  readonly exitCode?: number;
  readonly signal?: string;
  readonly timedOut: boolean;
  readonly durationMs: number;
  /** Last 2 KiB of its combined output, for the manifest and the failure message. */
  readonly outputTail: string;
}

/**
 * Splits a verify command given as one string (CLI flag) into argv, the way execa does: spaces separate
 * arguments, a backslash escapes a space. No shell is involved, so no quoting or globbing surprises.
 *
 * @example parseVerifyCommand('python3 /opt/verify.py --strict {path}') // ['python3', '/opt/verify.py', '--strict', '{path}']
 */
export function parseVerifyCommand(command: string): string[] {
  return parseCommandString(command.trim());
}

/**
 * Runs the user's verify command against a checkpoint (for example a script that loads it with
 * `torch.load(weights_only=True)` and checks the keys). `{path}` in any argument is replaced by the
 * checkpoint's path; without one, the path is appended. The path is also in
 * `FLEETMEDIC_CHECKPOINT_PATH`. Exit 0 passes; any other exit, a signal or the timeout fails the
 * checkpoint (it is never promoted on an inconclusive check).
 *
 * @throws CheckpointError `VERIFY_COMMAND` (permanent) when the command cannot be started at all.
 */
export async function runVerifyCommand(
  argv: readonly string[],
  checkpointPath: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<VerifyCommandResult> {
  const [file, ...rest] = argv;
  if (!file) throw new CheckpointError(ErrorCode.VerifyCommand, 'verify command is empty');
  const hasPlaceholder = rest.some((a) => a.includes('{path}'));
  const args = hasPlaceholder
    ? rest.map((a) => a.replaceAll('{path}', checkpointPath))
    : [...rest, checkpointPath];
  const started = performance.now();
  const result = await execa(file, args, {
    reject: false,
    all: true,
    stdin: 'ignore',
    timeout: options.timeoutMs ?? DEFAULT_VERIFY_COMMAND_TIMEOUT_MS,
    cancelSignal: options.signal,
    forceKillAfterDelay: 5_000,
    env: { FLEETMEDIC_CHECKPOINT_PATH: checkpointPath },
    maxBuffer: 1024 * 1024,
  });
  const durationMs = performance.now() - started;
  const code = (result.cause as { code?: unknown } | undefined)?.code;
  if (result.failed && (code === 'ENOENT' || code === 'EACCES') && result.exitCode === undefined) {
    throw new CheckpointError(
      ErrorCode.VerifyCommand,
      `verify command ${JSON.stringify(file)} cannot be run: ${String(code)}`,
      {
        permanent: true,
        cause: result.cause,
      },
    );
  }
  if (result.isCanceled) options.signal?.throwIfAborted();
  const all = typeof result.all === 'string' ? result.all : '';
  return {
    ok: !result.failed && result.exitCode === 0,
    exitCode: result.exitCode,
    signal: result.signal,
    timedOut: result.timedOut,
    durationMs,
    outputTail: all.slice(-2048),
  };
}

/** One line describing a failed verify command, for failure messages. */
export function describeVerifyFailure(result: VerifyCommandResult): string {
  const why = result.timedOut
    ? 'timed out'
    : result.signal
      ? `was killed by ${result.signal}`
      : `exited with ${result.exitCode}`;
  const tail = result.outputTail.trim().split('\n').slice(-3).join(' | ');
  return `verify command ${why}${tail ? `: ${tail}` : ''}`;
}
