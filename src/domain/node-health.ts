/**
 * Whether a GPU node counts as healthy: in service and offering all of its GPUs.
 *
 * Used by the fleet budget (how many GPU nodes are healthy) and before returning a node to service.
 */
import { parseQuantity } from './capacity.js';
import type { NodeLike } from './capacity.js';

import { GPU_RESOURCE } from '../k8s/labels.js';
import { QUARANTINE_TAINT_KEY } from '../k8s/remediation-labels.js';

// One definition of each name, shared with the Kubernetes activities that set them.
export { GPU_RESOURCE, QUARANTINE_TAINT_KEY };

/** Options of {@link isNodeHealthy}. */
export interface NodeHealthOptions {
  /** The GPU resource name; default `nvidia.com/gpu`. */
  readonly gpuResource?: string;
  /** The quarantine taint key; default {@link QUARANTINE_TAINT_KEY}. */
  readonly quarantineTaintKey?: string;
}

/** The verdict of {@link isNodeHealthy}: `reasons` is empty exactly when `healthy` is true. */
export interface NodeHealth {
  readonly healthy: boolean;
  readonly reasons: readonly string[];
}

/**
 * Whether a GPU node is healthy: its Ready condition is True, it is schedulable, it carries no
 * fleetmedic quarantine taint, and its allocatable GPUs equal its capacity (fewer means the device
 * plugin withdrew GPUs it found unhealthy; none at all means the plugin is not running).
 *
 * Anything that cannot be read (no Ready condition, an unparsable quantity) counts as unhealthy, so a
 * budget built on this never counts an unknown node as spare capacity.
 *
 * @param node - a `V1Node` (or any object with the same fields)
 * @param opts - resource and taint names, for clusters that differ from the defaults
 * @returns `healthy` and, when not healthy, every reason
 */
export function isNodeHealthy(node: NodeLike, opts: NodeHealthOptions = {}): NodeHealth {
  const gpu = opts.gpuResource ?? GPU_RESOURCE;
  const taintKey = opts.quarantineTaintKey ?? QUARANTINE_TAINT_KEY;
  const reasons: string[] = [];

  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready === undefined) reasons.push('no Ready condition');
  else if (ready.status !== 'True') reasons.push(`Ready condition is ${ready.status}`);

  if (node.spec?.unschedulable === true) reasons.push('cordoned (spec.unschedulable)');

  const quarantine = node.spec?.taints?.find((t) => t.key === taintKey);
  if (quarantine !== undefined) reasons.push(`carries the quarantine taint ${taintKey}:${quarantine.effect}`);

  const capacityText = node.status?.capacity?.[gpu];
  const allocatableText = node.status?.allocatable?.[gpu];
  const capacity = readQuantity(capacityText);
  const allocatable = readQuantity(allocatableText);
  if (capacity === undefined) {
    reasons.push(
      capacityText === undefined
        ? `reports no ${gpu} capacity (device plugin not running?)`
        : `cannot read ${gpu} capacity ${JSON.stringify(capacityText)}`,
    );
  } else if (capacity <= 0) {
    reasons.push(`reports ${gpu} capacity ${capacityText ?? ''}`.trim());
  } else if (allocatable === undefined) {
    reasons.push(
      allocatableText === undefined
        ? `reports no allocatable ${gpu}`
        : `cannot read allocatable ${gpu} ${JSON.stringify(allocatableText)}`,
    );
  } else if (allocatable !== capacity) {
    reasons.push(`allocatable ${gpu} ${allocatable} differs from capacity ${capacity}`);
  }

  return { healthy: reasons.length === 0, reasons };
}

function readQuantity(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseQuantity(text);
  } catch {
    return undefined;
  }
}
