import { execa } from 'execa';
import { ErrorCode, FleetmedicError } from '../errors.js';

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
  /** Reboots the node, where the runner can (the simulation); absent on real nodes for now. */
  reboot?(): Promise<void>;
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
  async function execute(file: string, args: readonly string[], command: string, runOptions: RunOptions) {
    const result = await execa(file, args, {
      reject: false,
      stdin: 'ignore',
      timeout: runOptions.timeoutMs,
      cancelSignal: runOptions.signal,
      forceKillAfterDelay: options.forceKillAfterMs ?? 5_000,
      maxBuffer,
      stripFinalNewline: false,
    });
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
  return {
    run(tool, args, runOptions) {
      return execute(paths[tool], args, `${tool} ${args.join(' ')}`.trim(), runOptions);
    },
    exec(argv, runOptions) {
      const [file, ...args] = argv;
      if (!file) throw new TypeError('exec needs a command');
      return execute(file, args, argv.join(' '), runOptions);
    },
  };
}
