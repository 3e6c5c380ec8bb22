import { pino, type Logger } from 'pino';

/**
 * The process-wide structured logger (JSON lines on stderr, so a command's stdout stays clean for
 * its output). Level from the configuration.
 */
export function createLogger(level: string, name = 'fleetmedic'): Logger {
  return pino({ name, level }, pino.destination(2));
}

export type { Logger };
