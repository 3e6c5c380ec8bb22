import { execa } from 'execa';
import { ErrorCode, FailureType, FleetmedicError } from '../errors.js';

/** The GPU tools the node agent runs. */
export type GpuTool = 'dcgmi' | 'nvidia-smi';

/** What a command printed and how it exited. */
export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
  /** Always false from {@link execaRunner}, which throws a FleetmedicError (`ErrorCode.GpuTool*`) instead. */
  readonly timedOut: boolean;
}

export interface RunOptions {
  readonly timeoutMs: number;
  /** Aborts (kills) the command, e.g. when Temporal cancels the activity. */
  readonly signal?: AbortSignal;
}

/**
 * Runs a GPU tool. The node agent's activities and parsers are the same on real and simulated nodes;
 * only this narrow interface differs: {@link execaRunner} on a GPU node, a simulated runner that
 * renders the real output formats from a node's fault state in the simulation.
 */
export interface CommandRunner {
  run(tool: GpuTool, args: readonly string[], options: RunOptions): Promise<CommandResult>;
  /**
   * Runs a configured host command (an argv from the agent's own configuration, e.g. a GPU holder's
   * stop command), with the same limits as the tools; absent where there is no host (the simulation).
   */
  exec?(argv: readonly string[], options: RunOptions): Promise<CommandResult>;
  /**
   * Schedules a reboot of the node and returns: the simulation's, or on a real node the agent's
   * configured reboot command ({@link ExecaRunnerOptions.reboot}); absent where neither exists. A
   * failure that must not be retried (the command failed or timed out, so it may or may not have
   * rebooted) is a permanent {@link FleetmedicError} (`FailureType.RebootFailed`).
   */
  reboot?(): Promise<void>;
}

/** The host command that reboots a real node (the agent's `--reboot-command`), and its time limit. */
export interface RebootCommand {
  /** The argv, run without a shell, e.g. `nsenter --target 1 ... -- systemctl reboot`. */
  readonly argv: readonly string[];
  /** How long it may take to schedule the reboot (`systemctl reboot` returns once it is queued). */
  readonly timeoutMs: number;
}

/** The most a GPU tool may print on stdout (and on stderr) before it is killed: 16 MiB. */
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

export interface ExecaRunnerOptions {
  /** Each tool's executable: a path, or a name looked up on `PATH`. */
  readonly paths?: Readonly<Record<GpuTool, string>>;
  /** The output limit per stream, in bytes (characters for text); default {@link DEFAULT_MAX_OUTPUT_BYTES}. */
  readonly maxOutputBytes?: number;
  /** How long a tool that ignores SIGTERM gets before SIGKILL; default 5 s. */
  readonly forceKillAfterMs?: number;
  /** The node's reboot command; without it the runner has no `reboot` (reboots go to an operator). */
  readonly reboot?: RebootCommand;
}

/**
 * Runs the real `dcgmi` / `nvidia-smi` through execa, with a timeout, cancellation and an output
 * limit. A non-zero exit is returned, not thrown: the tools report findings through exit codes (dcgmi
 * diag exits 226 when it found an error) that the parsers interpret. A tool that gave no result
 * (not started, timed out, cancelled, too much output) throws a {@link FleetmedicError} (codes in `ErrorCode.GpuTool*`), so that a
 * killed tool's exit code is never read as a finding.
 *
 * @example
 * const runner = execaRunner({ paths: { dcgmi: '/usr/bin/dcgmi', 'nvidia-smi': 'nvidia-smi' } });
 * const r = await runner.run('nvidia-smi', ['-L'], { timeoutMs: 30_000 });
 */
export function execaRunner(options: ExecaRunnerOptions = {}): CommandRunner {
  const paths = options.paths ?? { dcgmi: 'dcgmi', 'nvidia-smi': 'nvidia-smi' };
  const maxBuffer = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  if (!Number.isSafeInteger(maxBuffer) || maxBuffer <= 0) {
    throw new TypeError(`maxOutputBytes must be a positive integer, got ${String(maxBuffer)}`);
  }
  /** One process, never rejecting: stopped after `timeoutMs` (killed 5 s later), output bounded. */
  function spawn(file: string, args: readonly string[], timeoutMs: number, signal?: AbortSignal) {
    return execa(file, args, {
      reject: false,
      stdin: 'ignore',
      timeout: timeoutMs,
      cancelSignal: signal,
      forceKillAfterDelay: options.forceKillAfterMs ?? 5_000,
      maxBuffer,
      stripFinalNewline: false,
    });
  }
  async function execute(file: string, args: readonly string[], command: string, runOptions: RunOptions) {
    const result = await spawn(file, args, runOptions.timeoutMs, runOptions.signal);
    if (result.isCanceled)
      throw new FleetmedicError(ErrorCode.GpuToolCancelled, `${command} was cancelled`, {
        permanent: false,
      });
    if (result.timedOut) {
      throw new FleetmedicError(
        ErrorCode.GpuToolTimedOut,
        `${command} timed out after ${runOptions.timeoutMs} ms and was stopped`,
        { permanent: false },
      );
    }
    if (result.isMaxBuffer) {
      throw new FleetmedicError(
        ErrorCode.GpuToolOutputTooLarge,
        `${command} printed more than the output limit of ${maxBuffer} bytes and was stopped`,
      );
    }
    if (result.exitCode === undefined) {
      // Could not start at all (ENOENT, EACCES) or killed by a signal: not a finding about the GPU.
      throw new FleetmedicError(
        ErrorCode.GpuToolNotStarted,
        `${command} gave no result: ${result.shortMessage}`,
        { permanent: false },
      );
    }
    return {
      stdout: String(result.stdout ?? ''),
      stderr: String(result.stderr ?? ''),
      exitCode: result.exitCode,
      timedOut: false,
    };
  }
  const rebootCommand = options.reboot;
  if (rebootCommand && (rebootCommand.argv.length === 0 || !(rebootCommand.timeoutMs > 0))) {
    throw new TypeError('reboot needs a command and a positive timeoutMs');
  }
  return {
    run(tool, args, runOptions) {
      return execute(paths[tool], args, `${tool} ${args.join(' ')}`.trim(), runOptions);
    },
    exec(argv, runOptions) {
      const [file, ...args] = argv;
      if (!file) throw new TypeError('exec needs a command');
      return execute(file, args, argv.join(' '), runOptions);
    },
    ...(rebootCommand && {
      async reboot() {
        const [file, ...args] = rebootCommand.argv;
        const command = rebootCommand.argv.join(' ');
        const result = await spawn(file!, args, rebootCommand.timeoutMs);
        if (result.exitCode === 0 && !result.timedOut) return;
        const printed = `${String(result.stderr ?? '')}${String(result.stdout ?? '')}`.trim().slice(0, 500);
        const what = result.timedOut
          ? // It may have rebooted all the same: never retried blindly, an operator looks.
            `timed out after ${rebootCommand.timeoutMs} ms and was stopped; the node may reboot all the same`
          : result.exitCode === undefined
            ? `gave no result: ${result.shortMessage}`
            : `exited ${result.exitCode}`;
        throw new FleetmedicError(
          FailureType.RebootFailed,
          `reboot command ${command} ${what}: ${printed || 'no output'}`,
        );
      },
    }),
  };
}
