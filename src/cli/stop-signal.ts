/**
 * How a long-running command hears SIGINT and SIGTERM.
 *
 * Not `process.once`: execa registers an exit hook (signal-exit) while a child process runs, and that
 * hook raises the signal again when it finds no other listener for it. A `once` listener is removed
 * before the hook looks, so a SIGTERM that came while `dcgmi diag` ran killed the node agent at once,
 * without its graceful shutdown, and a Ctrl-C during `fleetmedic up` killed it before its cleanup.
 * These listeners stay until `dispose`.
 */
export type StopSignal = 'SIGINT' | 'SIGTERM';

/**
 * Calls `handler` on the first SIGINT or SIGTERM. A second one ends the process at once (exit status
 * 128 + the signal's number, as the default action would), for a person pressing Ctrl-C again.
 *
 * @returns a function that removes the listeners (call it when the command is done).
 * @example
 * const dispose = onStopSignal((signal) => worker.shutdown());
 */
export function onStopSignal(handler: (signal: StopSignal) => void): () => void {
  let stopping = false;
  const listener = (signal: StopSignal) => {
    if (stopping) process.exit(signal === 'SIGINT' ? 130 : 143);
    stopping = true;
    handler(signal);
  };
  process.on('SIGINT', listener);
  process.on('SIGTERM', listener);
  return () => {
    process.off('SIGINT', listener);
    process.off('SIGTERM', listener);
  };
}

/** Resolves with the first SIGINT or SIGTERM (see `onStopSignal`). */
export function untilStopSignal(): Promise<StopSignal> {
  return new Promise((resolve) => {
    onStopSignal(resolve);
  });
}
