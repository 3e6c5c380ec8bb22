import { execa } from 'execa';

/** The GPU tools the node agent runs. */
export type GpuTool = 'dcgmi' | 'nvidia-smi';

/** What a command printed and how it exited. */
export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
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
  /** Reboots the node, where the runner can (the simulation); absent on real nodes for now. */
  reboot?(): Promise<void>;
}

/**
 * Runs the real `dcgmi` / `nvidia-smi` through execa, with a timeout and cancellation. A non-zero exit
 * is returned, not thrown: the tools report findings through exit codes (dcgmi diag exits 226 when it
 * found an error) that the parsers interpret.
 */
export function execaRunner(
  paths: Readonly<Record<GpuTool, string>> = { dcgmi: 'dcgmi', 'nvidia-smi': 'nvidia-smi' },
): CommandRunner {
  return {
    async run(tool, args, options) {
      const result = await execa(paths[tool], args, {
        reject: false,
        timeout: options.timeoutMs,
        cancelSignal: options.signal,
        forceKillAfterDelay: 5_000,
        stripFinalNewline: false,
      });
      if (result.isCanceled) throw new Error(`${tool} ${args.join(' ')} was cancelled`);
      if (result.exitCode === undefined && !result.timedOut) {
        // Could not start at all (ENOENT, EACCES): not a finding about the GPU.
        throw new Error(`${tool} could not run: ${result.shortMessage}`);
      }
      return {
        stdout: String(result.stdout ?? ''),
        stderr: String(result.stderr ?? ''),
        exitCode: result.exitCode ?? -1,
        timedOut: result.timedOut,
      };
    },
  };
}
