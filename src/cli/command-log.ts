import type { LogEntry } from '@temporalio/worker';
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';

/**
 * Where an interactive command's logs go: a file under the state directory, so that what a person
 * reads in the terminal is the command's own story (no SDK warnings or JSON lines mixed in), or
 * stderr with `--verbose`. Services (`worker`, `webhook serve`, `agents`) keep logging to stderr.
 */
export interface CommandLog {
  /** The file the logs go to; undefined with `--verbose` (stderr). */
  readonly file: string | undefined;
  /** Writes a structured entry (a notification, an event). */
  write(entry: Record<string, unknown>): void;
  /** The Temporal SDK's log function, for `installRuntime`. */
  sdk(entry: LogEntry): void;
}

function line(level: string, message: string, meta?: unknown): string {
  const details = meta === undefined ? '' : ` ${inspect(meta, { depth: 6, breakLength: Infinity })}`;
  return `${new Date().toISOString()} ${level} ${message}${details}\n`;
}

/**
 * The log of command `name`: `<stateDir>/logs/<name>.log` (appended), or stderr when `verbose`.
 *
 * @example
 * const log = commandLog(config.stateDir, 'demo', flags.verbose);
 * installRuntime(config.logLevel, log.sdk);
 */
export function commandLog(stateDir: string, name: string, verbose: boolean): CommandLog {
  let file: string | undefined;
  let fd: number | undefined;
  if (!verbose) {
    file = path.join(stateDir, 'logs', `${name}.log`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fd = fs.openSync(file, 'a', 0o600);
  }
  const out = (text: string) => {
    if (fd === undefined) process.stderr.write(text);
    else fs.writeSync(fd, text);
  };
  return {
    file,
    write(entry) {
      out(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
    },
    sdk(entry) {
      out(line(entry.level, entry.message, entry.meta));
    },
  };
}
