import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common';
import { execa, type ResultPromise } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TemporalConnectionOptions } from '../../src/client/temporal-connection.js';
import { pickFreePorts } from '../../src/stack/processes.js';
import { SEARCH_ATTRIBUTES } from '../../src/contracts/search-attributes.js';

/** PEM files of a throwaway CA, a server certificate for 127.0.0.1 / localhost and a client certificate. */
export interface TestPki {
  readonly dir: string;
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await execa('openssl', args, { cwd: dir, stdin: 'ignore' });
}

/** Generates a CA, and server and client certificates signed by it, with openssl (EC P-256, one day). */
export async function generatePki(dir: string): Promise<TestPki> {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(
    dir,
    ['req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1'].concat([
      '-subj',
      '/CN=fleetmedic test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
    ]),
  );
  const leaf = async (name: string, cn: string, ext: string) => {
    await fs.writeFile(path.join(dir, `${name}.ext`), ext);
    await openssl(dir, [
      'req',
      ...key,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${cn}`,
    ]);
    await openssl(
      dir,
      ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key'].concat([
        '-CAcreateserial',
        '-out',
        `${name}.pem`,
        '-days',
        '1',
        '-extfile',
        `${name}.ext`,
      ]),
    );
  };
  await leaf(
    'server',
    'localhost',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n',
  );
  await leaf('client', 'fleetmedic-worker', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  const at = (f: string) => path.join(dir, f);
  return {
    dir,
    ca: at('ca.pem'),
    serverCert: at('server.pem'),
    serverKey: at('server.key'),
    clientCert: at('client.pem'),
    clientKey: at('client.key'),
  };
}

/** A Temporal server on 127.0.0.1 whose frontend requires mutual TLS. */
export interface MtlsTemporal {
  readonly address: string;
  readonly namespace: string;
  readonly pki: TestPki;
  /** Connection options with the client certificate (what FLEETMEDIC_TEMPORAL_TLS_* produce). */
  readonly withClientCert: TemporalConnectionOptions;
  stop(): Promise<void>;
}

function serverConfig(pki: TestPki, ports: number[]): string {
  const [frontend, history, matching, worker, ...membership] = ports;
  const sqlite = `      sql:
        pluginName: sqlite
        databaseName: default
        connectAddr: localhost
        connectProtocol: tcp
        connectAttributes: { mode: memory, cache: private }
        maxConns: 1
        maxIdleConns: 1
        maxConnLifetime: 1h`;
  const service = (grpc: number, member: number) =>
    `    rpc: { grpcPort: ${grpc}, membershipPort: ${member}, bindOnLocalHost: true }`;
  return `log: { stdout: true, level: warn }
persistence:
  defaultStore: sqlite-default
  visibilityStore: sqlite-visibility
  numHistoryShards: 1
  datastores:
    sqlite-default:
${sqlite}
    sqlite-visibility:
${sqlite}
global:
  membership: { maxJoinDuration: 30s, broadcastAddress: 127.0.0.1 }
  tls:
    frontend:
      server:
        certFile: ${pki.serverCert}
        keyFile: ${pki.serverKey}
        requireClientAuth: true
        clientCaFiles: [${pki.ca}]
      client:
        serverName: localhost
        rootCaFiles: [${pki.ca}]
    systemWorker:
      certFile: ${pki.clientCert}
      keyFile: ${pki.clientKey}
      client:
        serverName: localhost
        rootCaFiles: [${pki.ca}]
services:
  frontend:
${service(frontend!, membership[0]!)}
  history:
${service(history!, membership[1]!)}
  matching:
${service(matching!, membership[2]!)}
  worker:
${service(worker!, membership[3]!)}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active: { enabled: true, initialFailoverVersion: 1, rpcName: frontend, rpcAddress: "127.0.0.1:${frontend}" }
dcRedirectionPolicy: { policy: noop }
`;
}

/**
 * Starts the Temporal server binary (`go.temporal.io/server/cmd/server`, built by the toolchain) with
 * SQLite in memory and a frontend that requires client certificates from a CA generated here, then
 * registers a namespace and fleetmedic's search attributes through a mutual-TLS connection.
 */
export async function startMtlsTemporal(serverBinary: string): Promise<MtlsTemporal> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-mtls-'));
  const pki = await generatePki(dir);
  const ports = await pickFreePorts(8);
  await fs.mkdir(path.join(dir, 'config'));
  await fs.writeFile(path.join(dir, 'config', 'mtls.yaml'), serverConfig(pki, ports));
  const address = `127.0.0.1:${ports[0]}`;
  const logFile = path.join(dir, 'server.log');
  const server: ResultPromise = execa(
    serverBinary,
    ['--root', dir, '--config', 'config', '--env', 'mtls', '--allow-no-auth', 'start'],
    { cwd: dir, stdin: 'ignore', stdout: { file: logFile }, stderr: { file: logFile }, reject: false },
  );
  let exited = false;
  void server.then(() => (exited = true));
  const withClientCert: TemporalConnectionOptions = {
    address,
    tls: {
      serverRootCACertificate: await fs.readFile(pki.ca),
      clientCertPair: { crt: await fs.readFile(pki.clientCert), key: await fs.readFile(pki.clientKey) },
      serverNameOverride: 'localhost',
    },
  };
  const stop = async () => {
    server.kill('SIGTERM');
    const killer = setTimeout(() => server.kill('SIGKILL'), 10_000);
    await server;
    clearTimeout(killer);
    await fs.rm(dir, { recursive: true, force: true });
  };
  const namespace = 'fleetmedic-mtls';
  try {
    const deadline = Date.now() + 90_000;
    let connection: Connection | undefined;
    while (!connection) {
      if (exited) {
        throw new Error(`the Temporal server exited: ${(await fs.readFile(logFile, 'utf8')).slice(-2000)}`);
      }
      try {
        connection = await Connection.connect({ ...withClientCert, connectTimeout: 2_000 });
        await connection.workflowService.getSystemInfo({});
      } catch (err) {
        await connection?.close();
        connection = undefined;
        if (Date.now() > deadline) throw new Error(`the mTLS Temporal server did not answer: ${String(err)}`);
        await sleep(500);
      }
    }
    try {
      await connection.workflowService.registerNamespace({
        namespace,
        workflowExecutionRetentionPeriod: msToTs('1 day'),
      });
      await connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: Object.fromEntries(SEARCH_ATTRIBUTES.map((a) => [a.name, 2 /* KEYWORD */])),
      });
      // The namespace registry refreshes on its own schedule: wait until the namespace is usable.
      for (;;) {
        try {
          await connection.workflowService.describeNamespace({ namespace });
          await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await sleep(500);
        }
      }
    } finally {
      await connection.close();
    }
    return { address, namespace, pki, withClientCert, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
