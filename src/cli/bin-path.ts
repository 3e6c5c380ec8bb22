import { fileURLToPath } from 'node:url';

/**
 * The `fleetmedic` command of this installation (bin/fleetmedic.js), for the processes fleetmedic
 * starts itself (the process runner, its stand-ins and replicas, the drill's probe): run with
 * `process.execPath`, it uses the compiled CLI when built, else the sources through tsx.
 */
export const FLEETMEDIC_BIN = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));
