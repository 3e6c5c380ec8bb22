import type { SimulatedGpu } from '../gpu/render.js';

/**
 * The Alertmanager webhook v4 notification that a real pipeline sends for a GPU fault on a node:
 * dcgm-exporter exports `DCGM_FI_DEV_XID_ERRORS` (the last XID, a gauge) with the GPU's labels,
 * Prometheus scrapes it through a ServiceMonitor (adding instance, job, namespace, pod, container,
 * service), an alerting rule fires `GpuXidCritical` with `severity` and the XID copied into a label,
 * and Alertmanager groups by node and alert name and POSTs the group. `fleetmedic sim inject` sends
 * it to the webhook so that a simulated fault takes the same path as a real one.
 */
export interface SimulatedAlertInput {
  readonly node: string;
  readonly gpu: SimulatedGpu;
  /** The XID the exporter reports; without one the alert is a DCGM health failure. */
  readonly xid?: number;
  /** DCGM health error when there is no XID (e.g. `DCGM_FR_ROW_REMAP_FAILURE`). */
  readonly dcgmCode?: string;
  /** When the fault began (the alert's startsAt). */
  readonly startsAt: Date;
  readonly driverVersion?: string;
}

/** Alertmanager webhook v4 body, as Alertmanager marshals it. */
export interface AlertmanagerNotification {
  readonly receiver: string;
  readonly status: 'firing' | 'resolved';
  readonly alerts: readonly {
    readonly status: 'firing' | 'resolved';
    readonly labels: Record<string, string>;
    readonly annotations: Record<string, string>;
    readonly startsAt: string;
    readonly endsAt: string;
    readonly generatorURL: string;
    readonly fingerprint: string;
  }[];
  readonly groupLabels: Record<string, string>;
  readonly commonLabels: Record<string, string>;
  readonly commonAnnotations: Record<string, string>;
  readonly externalURL: string;
  readonly version: '4';
  readonly groupKey: string;
  readonly truncatedAlerts: number;
}

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

/**
 * Alertmanager's alert fingerprint: FNV-1a 64 over the label names and values sorted by name, each
 * followed by the 0xff separator (prometheus/common `model.LabelSet.Fingerprint`), as 16 hex digits.
 * Checked against fingerprints in real Alertmanager payloads (test/fixtures/alertmanager).
 */
export function alertFingerprint(labels: Readonly<Record<string, string>>): string {
  let hash = FNV64_OFFSET;
  const add = (bytes: Uint8Array) => {
    for (const b of bytes) hash = ((hash ^ BigInt(b)) * FNV64_PRIME) & MASK64;
  };
  const separator = Uint8Array.of(0xff);
  const utf8 = new TextEncoder();
  for (const name of Object.keys(labels).sort()) {
    add(utf8.encode(name));
    add(separator);
    add(utf8.encode(labels[name]));
    add(separator);
  }
  return hash.toString(16).padStart(16, '0');
}

/** `{a="1", b="2"}` as Alertmanager prints a label set (sorted by name) in group keys. */
function labelSetString(labels: Readonly<Record<string, string>>): string {
  return `{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(', ')}}`;
}

/**
 * Builds the notification for one faulty GPU (see {@link SimulatedAlertInput}).
 *
 * @example
 * const body = simulatedXidNotification({ node: 'gpu-node-2', gpu, xid: 79, startsAt: new Date() });
 */
export function simulatedXidNotification(input: SimulatedAlertInput): AlertmanagerNotification {
  const alertname = input.xid !== undefined ? 'GpuXidCritical' : 'GpuHealthFailure';
  const gpu = input.gpu;
  // dcgm-exporter's labels (gpu, UUID, pci_bus_id, device, modelName, Hostname, driver), then the
  // scrape's (instance, job, namespace, pod, container, service), then the rule's.
  const labels: Record<string, string> = {
    alertname,
    severity: 'critical',
    Hostname: input.node,
    gpu: String(gpu.index),
    UUID: gpu.uuid,
    pci_bus_id: gpu.busId,
    device: `nvidia${gpu.index}`,
    modelName: gpu.name,
    DCGM_FI_DRIVER_VERSION: input.driverVersion ?? '570.124.06',
    instance: `${input.node}:9400`,
    job: 'nvidia-dcgm-exporter',
    namespace: 'gpu-operator',
    pod: `nvidia-dcgm-exporter-${input.node}`,
    container: 'nvidia-dcgm-exporter',
    service: 'nvidia-dcgm-exporter',
    ...(input.xid !== undefined && { xid: String(input.xid) }),
    ...(input.dcgmCode !== undefined && { dcgm_code: input.dcgmCode }),
  };
  const what = input.xid !== undefined ? `XID ${input.xid}` : (input.dcgmCode ?? 'health failure');
  const annotations = {
    summary: `${what} on ${input.node} GPU ${gpu.index} (${gpu.uuid})`,
    ...(input.xid !== undefined && { DCGM_FI_DEV_XID_ERRORS: String(input.xid) }),
  };
  const expr =
    input.xid !== undefined
      ? `DCGM_FI_DEV_XID_ERRORS{xid="${input.xid}"} > 0`
      : 'DCGM_FI_DEV_ROW_REMAP_FAILURE > 0';
  const groupLabels = { alertname, Hostname: input.node };
  return {
    receiver: 'fleetmedic',
    status: 'firing',
    alerts: [
      {
        status: 'firing',
        labels,
        annotations,
        // Alertmanager marshals Go times with nanoseconds; JavaScript has milliseconds.
        startsAt: input.startsAt.toISOString(),
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: `http://prometheus-k8s-0:9090/graph?g0.expr=${encodeURIComponent(expr)}&g0.tab=1`,
        fingerprint: alertFingerprint(labels),
      },
    ],
    groupLabels,
    commonLabels: labels,
    commonAnnotations: annotations,
    externalURL: 'http://alertmanager-main-0:9093',
    version: '4',
    groupKey: `{}/{severity="critical"}:${labelSetString(groupLabels)}`,
    truncatedAlerts: 0,
  };
}
