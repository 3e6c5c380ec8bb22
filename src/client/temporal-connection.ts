import fs from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import type { Config } from '../config/config.js';
import { ConfigError } from '../errors.js';

/**
 * Where and how a process reaches Temporal: the same for the worker (NativeConnection), the CLI and
 * the webhook (Connection), built from the one configuration.
 */
export interface TemporalTarget {
  readonly address: string;
  readonly namespace: string;
  /** TLS settings; `true` for TLS with the system CAs; absent for plain text (the embedded stack). */
  readonly tls?: TLSConfig | true;
  readonly apiKey?: string;
}

/** The options both `Connection.connect` and `NativeConnection.connect` take. */
export interface TemporalConnectionOptions {
  readonly address: string;
  readonly tls?: TLSConfig | true;
  readonly apiKey?: string;
}

function readPem(file: string, variable: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${variable}=${file} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The TLS settings of the configuration, with the PEM files read (and refused with the variable's
 * name when unreadable); undefined when TLS is off.
 *
 * @example
 * const tls = temporalTls(loadConfig({ FLEETMEDIC_TEMPORAL_TLS_CA_FILE: '/etc/temporal/ca.pem' }));
 */
export function temporalTls(config: Config): TLSConfig | true | undefined {
  const files =
    config.temporalTlsCaFile !== undefined ||
    config.temporalTlsCertFile !== undefined ||
    config.temporalTlsServerName !== undefined;
  if (!config.temporalTls && !files) return undefined;
  if (!files) return true;
  const tls: {
    serverRootCACertificate?: Buffer;
    clientCertPair?: { crt: Buffer; key: Buffer };
    serverNameOverride?: string;
  } = {};
  if (config.temporalTlsCaFile !== undefined) {
    tls.serverRootCACertificate = readPem(config.temporalTlsCaFile, 'FLEETMEDIC_TEMPORAL_TLS_CA_FILE');
  }
  if (config.temporalTlsCertFile !== undefined && config.temporalTlsKeyFile !== undefined) {
    tls.clientCertPair = {
      crt: readPem(config.temporalTlsCertFile, 'FLEETMEDIC_TEMPORAL_TLS_CERT_FILE'),
      key: readPem(config.temporalTlsKeyFile, 'FLEETMEDIC_TEMPORAL_TLS_KEY_FILE'),
    };
  }
  if (config.temporalTlsServerName !== undefined) tls.serverNameOverride = config.temporalTlsServerName;
  return tls;
}

/** The connection options of a target, for either kind of connection. */
export function connectionOptions(target: TemporalTarget): TemporalConnectionOptions {
  return {
    address: target.address,
    ...(target.tls !== undefined && { tls: target.tls }),
    ...(target.apiKey !== undefined && { apiKey: target.apiKey }),
  };
}
