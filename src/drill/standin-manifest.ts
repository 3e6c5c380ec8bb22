/**
 * The drill's own inference Deployment, PodDisruptionBudget and Service: stand-in replicas that the
 * process runner serves on simulated nodes, shaped like the chart's inference Deployment in what the
 * preflight checks (required hostname anti-affinity, maxSurge 1 / maxUnavailable 0, readiness on
 * /health, a preStop sleep longer than the gateway's watch lag).
 */
import type { V1Container, V1Deployment, V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import { GPU_RESOURCE, PROCESS_LABEL } from '../k8s/labels.js';
import { GATEWAY_UPSTREAM_ANNOTATION } from '../runner/process-kinds.js';
import { HOSTNAME_TOPOLOGY } from './preflight.js';

/** Marks what a drill created, with the drill's ID: restore deletes only objects carrying its own. */
export const DRILL_LABEL = 'fleetmedic.io/drill';

/** Options of {@link standinManifests}. */
export interface StandinManifestOptions {
  readonly namespace: string;
  readonly name: string;
  readonly drillId: string;
  /** Default 3. */
  readonly replicas?: number;
  /** The stand-in's service time per request, ms (default 20). */
  readonly serviceMs?: number;
  /** Default 3 s: the pod leaves the gateway's routing before its process stops. */
  readonly preStopSeconds?: number;
}

/** What differs between the drill's Deployments (stand-in replicas, gateway pods). */
interface DrillWorkload {
  readonly namespace: string;
  readonly name: string;
  readonly drillId: string;
  readonly replicas: number;
  /** The process runner's kind for its pods. */
  readonly process: 'standin' | 'gateway';
  readonly annotations: Record<string, string>;
  readonly antiAffinity: 'required' | 'preferred';
  readonly container: V1Container;
  readonly preStopSeconds: number;
}

/**
 * A drill's Deployment and its PDB (`maxUnavailable: 1`), labelled `app: <name>` and with the
 * drill's ID: rolling update maxSurge 1 / maxUnavailable 0, spread over nodes by hostname, the
 * container's preStop sleep, and a grace period 10 s longer.
 */
function drillWorkload(o: DrillWorkload): { deployment: V1Deployment; pdb: V1PodDisruptionBudget } {
  const app = { app: o.name };
  const marks = { ...app, [DRILL_LABEL]: o.drillId };
  const meta = { name: o.name, namespace: o.namespace, labels: marks };
  const term = { labelSelector: { matchLabels: app }, topologyKey: HOSTNAME_TOPOLOGY };
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta,
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: app },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: { ...marks, [PROCESS_LABEL]: o.process }, annotations: o.annotations },
        spec: {
          terminationGracePeriodSeconds: o.preStopSeconds + 10,
          affinity: {
            podAntiAffinity:
              o.antiAffinity === 'required'
                ? { requiredDuringSchedulingIgnoredDuringExecution: [term] }
                : {
                    preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: term }],
                  },
          },
          containers: [{ ...o.container, lifecycle: { preStop: { sleep: { seconds: o.preStopSeconds } } } }],
        },
      },
    },
  };
  const pdb: V1PodDisruptionBudget = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta,
    spec: { maxUnavailable: 1, selector: { matchLabels: app } },
  };
  return { deployment, pdb };
}

/** The three objects of a drill's stand-in inference service, labelled as created by `drillId`. */
export function standinManifests(o: StandinManifestOptions): {
  deployment: V1Deployment;
  pdb: V1PodDisruptionBudget;
  service: V1Service;
} {
  const { deployment, pdb } = drillWorkload({
    namespace: o.namespace,
    name: o.name,
    drillId: o.drillId,
    replicas: o.replicas ?? 3,
    process: 'standin',
    annotations: { 'fleetmedic.io/standin-service-ms': String(o.serviceMs ?? 20) },
    antiAffinity: 'required',
    container: {
      name: 'server',
      image: 'fleetmedic/standin:sim',
      ports: [{ name: 'http', containerPort: 8080 }],
      resources: { requests: { [GPU_RESOURCE]: '1' }, limits: { [GPU_RESOURCE]: '1' } },
      readinessProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 1 },
    },
    preStopSeconds: o.preStopSeconds ?? 3,
  });
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: deployment.metadata!,
    spec: { selector: { app: o.name }, ports: [{ name: 'http', port: 8080, targetPort: 'http' }] },
  };
  return { deployment, pdb, service };
}

/** Options of {@link gatewayManifests}. */
export interface GatewayManifestOptions {
  readonly namespace: string;
  /** The gateway Deployment's name. */
  readonly name: string;
  /** The inference Deployment it routes to, in the same namespace. */
  readonly upstream: string;
  readonly drillId: string;
  /** Default 2: one can be evicted while the other serves. */
  readonly replicas?: number;
  /** Default 2 s: the pod leaves the Service before its gateway starts draining. */
  readonly preStopSeconds?: number;
}

/**
 * The drill's gateway as pods (`fleetmedic gateway serve`, run by the process runner, kind
 * `gateway`) in front of `upstream`, with a PDB that keeps one serving, labelled as created by
 * `drillId`. The chart's gateway keeps off GPU nodes, and a simulated cluster has only those, so
 * the drill brings its own, shaped the same in what a drill exercises: a PDB, spread over nodes
 * (preferred), readiness on /healthz, a preStop sleep, then SIGTERM, on which the gateway drains its
 * clients' connections within the grace period (src/runner/process-kinds.ts).
 */
export function gatewayManifests(o: GatewayManifestOptions): {
  deployment: V1Deployment;
  pdb: V1PodDisruptionBudget;
} {
  return drillWorkload({
    namespace: o.namespace,
    name: o.name,
    drillId: o.drillId,
    replicas: o.replicas ?? 2,
    process: 'gateway',
    annotations: { [GATEWAY_UPSTREAM_ANNOTATION]: o.upstream },
    antiAffinity: 'preferred',
    container: {
      name: 'gateway',
      image: 'fleetmedic/fleetmedic:sim',
      ports: [{ name: 'http', containerPort: 8090 }],
      readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
    },
    preStopSeconds: o.preStopSeconds ?? 2,
  });
}
