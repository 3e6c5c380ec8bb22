import {
  DefaultLogger,
  makeTelemetryFilterString,
  Runtime,
  type LogEntry,
  type LogLevel,
} from '@temporalio/worker';

const LEVELS: Record<string, LogLevel> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARN',
  error: 'ERROR',
  fatal: 'ERROR',
  silent: 'ERROR',
};

let installed = false;

/**
 * Installs the Temporal SDK runtime once, with fleetmedic's log level: worker lifecycle messages at
 * INFO would drown a CLI command's own output. `sink` receives the entries instead of stderr (an
 * interactive command's log file).
 */
export function installRuntime(level: string, sink?: (entry: LogEntry) => void): void {
  if (installed) return;
  installed = true;
  const logger = new DefaultLogger(LEVELS[level] ?? 'WARN', sink);
  // With a sink, the native core's own log lines (Rust, on stderr by default) go through it too.
  Runtime.install(
    sink
      ? {
          logger,
          telemetryOptions: {
            logging: { filter: makeTelemetryFilterString({ core: logger.level }), forward: {} },
          },
        }
      : { logger },
  );
}
