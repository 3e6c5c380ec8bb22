import { VersionApi } from '@kubernetes/client-node';
import { Connection } from '@temporalio/client';
import { execa } from 'execa';
import type { Config } from '../config/config.js';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { checkToolVersion, cachedToolPath } from '../toolchain/toolchain.js';
import { TOOLS } from '../toolchain/tools.js';
import { kwokClusterProcesses } from './kwok-cluster.js';
import { isRunning } from './processes.js';
import { assertSimulatedCluster, readySimNodes } from './sim-cluster.js';
import { readStackState } from './state.js';

/** One line per component: its version and health. `ok` is false when anything needed is broken. */
export async function doctor(config: Config): Promise<{ ok: boolean; lines: string[] }> {
  const lines: string[] = [];
  let ok = true;
  const mark = (good: boolean) => (good ? 'ok  ' : 'FAIL');
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const nodeOk = major > 22 || (major === 22 && minor >= 19);
  ok &&= nodeOk;
  lines.push(
    `${mark(nodeOk)} node ${process.version}${nodeOk ? '' : ' (22.19 or later is supported: run scripts/setup.sh)'}`,
  );
  const go = await execa(process.env.FLEETMEDIC_GO || 'go', ['env', 'GOVERSION'], { reject: false });
  lines.push(
    go.exitCode === 0
      ? `ok   ${go.stdout.trim()} (builds the toolchain)`
      : 'warn Go not found: needed only to build the toolchain (`fleetmedic toolchain`)',
  );
  for (const spec of TOOLS) {
    const binary = process.env[spec.envVar] || cachedToolPath(config.cacheDir, spec);
    const check = await checkToolVersion(binary, spec);
    // helm only renders the chart: the stack is healthy without it.
    if (spec.stack) ok &&= check.ok;
    const label = check.ok ? mark(true) : spec.stack ? mark(false) : 'warn';
    lines.push(
      `${label} ${spec.name} v${spec.version}: ${check.ok ? `${check.detail} (${binary})` : check.detail}`,
    );
  }
  const state = await readStackState(config.stateDir);
  if (!state) {
    lines.push(`---- no stack recorded in ${config.stateDir} (run \`fleetmedic up\`)`);
    return { ok, lines };
  }
  const temporalUp = await isRunning(state.temporal.process);
  let temporalDetail = `pid ${state.temporal.process.pid} not running`;
  if (temporalUp) {
    try {
      const connection = await Connection.connect({ address: state.temporal.address, connectTimeout: 2_000 });
      const info = await connection.workflowService.getSystemInfo({});
      temporalDetail = `server ${info.serverVersion} at ${state.temporal.address}, UI ${state.temporal.uiUrl}`;
      await connection.close();
    } catch (err) {
      temporalDetail = `pid ${state.temporal.process.pid} running but not answering: ${(err as Error).message}`;
    }
  }
  const temporalOk = temporalDetail.startsWith('server');
  ok &&= temporalOk;
  lines.push(`${mark(temporalOk)} Temporal dev server: ${temporalDetail}`);
  const ref = { name: state.clusterName, workdir: state.kube.workdir, kwokctl: state.kube.kwokctl };
  for (const proc of await kwokClusterProcesses(ref)) {
    ok &&= proc.running;
    lines.push(
      `${mark(proc.running)} ${proc.component}: pid ${proc.pid} ${proc.running ? 'running' : 'not running'}`,
    );
  }
  try {
    const kc = loadKubeConfig(state.kube.kubeconfig);
    const version = await kc.makeApiClient(VersionApi).getCode();
    lines.push(`ok   kube-apiserver ${version.gitVersion} at ${state.kube.apiserverUrl}`);
    const clusterId = await assertSimulatedCluster(kc);
    lines.push(`ok   simulation marker present (cluster ID ${clusterId})`);
    const ready = (await readySimNodes(kc)).length;
    const nodesOk = ready >= state.nodes;
    ok &&= nodesOk;
    lines.push(`${mark(nodesOk)} ${ready}/${state.nodes} simulated GPU nodes Ready`);
  } catch (err) {
    ok = false;
    lines.push(`FAIL kube-apiserver at ${state.kube.apiserverUrl}: ${(err as Error).message}`);
  }
  return { ok, lines };
}
