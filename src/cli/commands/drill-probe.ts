import type { Command } from 'commander';
import { jsonlSink, parseProbeOptions, runProbe, type ProbeOptionsInput } from '../../drill/probe.js';
import { onStopSignal } from '../stop-signal.js';

/** Where the command writes its two lines; tests capture it. */
export interface DrillProbeIo {
  stderr(text: string): void;
}

const processIo: DrillProbeIo = { stderr: (t) => process.stderr.write(t) };

interface Flags {
  targetUrl: string;
  out: string;
  rate?: string;
  streamShare?: string;
  duration?: string;
  model?: string;
  maxTokens?: string;
  maxInFlight?: string;
  timeout?: string;
  grace?: string;
  anyAddress?: boolean;
}

/** Maps the flags to the probe's option names; parseProbeOptions validates them. */
export function probeInput(flags: Flags): ProbeOptionsInput {
  const input = {
    targetUrl: flags.targetUrl,
    rate: flags.rate,
    streamShare: flags.streamShare,
    durationS: flags.duration,
    model: flags.model,
    maxTokens: flags.maxTokens,
    maxInFlight: flags.maxInFlight,
    timeoutMs: flags.timeout,
    graceMs: flags.grace,
    anyAddress: flags.anyAddress,
  };
  return Object.fromEntries(
    Object.entries(input).filter(([, v]) => v !== undefined),
  ) as unknown as ProbeOptionsInput;
}

/** `fleetmedic drill-probe`: the drill's continuous probe, one JSON line per request (docs/drill.md). */
export function registerDrillProbeCommand(program: Command, io: DrillProbeIo = processIo): void {
  program
    .command('drill-probe')
    .description(
      'send a steady load of chat completions (streamed and not) and write one JSON line per request',
    )
    .requiredOption('--target-url <url>', 'base URL of the gateway or any OpenAI-compatible server')
    .requiredOption('--out <file>', 'JSONL file the records are appended to')
    .option('--rate <req/s>', 'requests started per second, whatever the answers do (default 20)')
    .option('--stream-share <0..1>', 'share of streamed requests (default 0.5)')
    .option('--duration <s>', 'stop after this many seconds (default: at SIGTERM or SIGINT)')
    .option('--model <name>', 'model of each request (default "default")')
    .option('--max-tokens <n>', 'max_tokens of each request (default 16)')
    .option('--max-in-flight <n>', 'requests in flight at most; more are coverage gaps (default rate × 10)')
    .option('--timeout <ms>', 'a request running this long fails (default 30000)')
    .option('--grace <ms>', 'on stop, time left to requests in flight (default 3000)')
    .option('--any-address', 'allow a target outside 127.0.0.0/8 (a real ingress)')
    .action(async (flags: Flags) => {
      const options = parseProbeOptions(probeInput(flags));
      const sink = jsonlSink(flags.out);
      const stop = new AbortController();
      const dispose = onStopSignal(() => stop.abort());
      io.stderr(
        `drill-probe: ${options.rate} req/s (${Math.round(options.streamShare * 100)} % streamed) to ` +
          `${options.targetUrl}, at most ${options.maxInFlight} in flight, writing ${flags.out}` +
          `${options.durationS === undefined ? '; stop with SIGTERM or Ctrl-C' : ` for ${options.durationS} s`}\n`,
      );
      try {
        const s = await runProbe(options, { sink, signal: stop.signal });
        io.stderr(
          `drill-probe: stopped; ${s.sent} sent (${s.ok} ok, ${s.notOk} not ok, ${s.stopped} cut by the stop), ` +
            `${s.unsent} not sent on time (coverage gaps)\n`,
        );
      } finally {
        sink.close();
        dispose();
      }
    });
}
