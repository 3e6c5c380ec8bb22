/**
 * Kubernetes resource quantities for the node and pod views. The parser itself is the capacity
 * check's (`domain/capacity`), so the views and the scheduler-style check agree on every value;
 * client-node's `quantityToScalar` rejects fractional binary quantities such as `1.5Gi`.
 */
import { parseQuantity } from '../domain/capacity.js';

export { parseQuantity };

/** Like {@link parseQuantity}, but 0 for a missing or malformed value (a node status we only report). */
export function quantityOrZero(value: string | undefined): number {
  if (value === undefined) return 0;
  try {
    return parseQuantity(value);
  } catch {
    return 0;
  }
}
