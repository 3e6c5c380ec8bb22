import type { V1LabelSelector, V1PodDisruptionBudget } from '@kubernetes/client-node';

/**
 * True when `labels` match a Kubernetes label selector as a policy/v1 PodDisruptionBudget reads it:
 * every `matchLabels` pair and every `matchExpressions` term (In, NotIn, Exists, DoesNotExist) must
 * hold. An empty selector (`{}`) matches every pod of the namespace; a null or absent one matches none.
 *
 * @throws Error naming the operator when a term has an operator Kubernetes does not define (the API
 *   server rejects such a selector, so seeing one means the input did not come from it).
 *
 * @example
 * selectorMatches({ matchLabels: { app: 'web' } }, { app: 'web', tier: 'a' }); // true
 */
export function selectorMatches(
  selector: V1LabelSelector | null | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  if (selector === null || selector === undefined) return false;
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (have[key] !== value) return false;
  }
  for (const term of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(have, term.key);
    const values = term.values ?? [];
    switch (term.operator) {
      case 'In':
        if (!present || !values.includes(have[term.key]!)) return false;
        break;
      case 'NotIn':
        if (present && values.includes(have[term.key]!)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        throw new Error(
          `label selector term for key ${JSON.stringify(term.key)} has operator ${JSON.stringify(term.operator)}; expected In, NotIn, Exists or DoesNotExist`,
        );
    }
  }
  return true;
}

/**
 * The PodDisruptionBudgets among `pdbs` that cover a pod: same namespace, selector matching its
 * labels. The Eviction API consults exactly these (and refuses a pod covered by more than one).
 */
export function coveringPdbs(
  pod: { namespace: string; labels: Readonly<Record<string, string>> | undefined },
  pdbs: readonly V1PodDisruptionBudget[],
): V1PodDisruptionBudget[] {
  return pdbs.filter(
    (pdb) => pdb.metadata?.namespace === pod.namespace && selectorMatches(pdb.spec?.selector, pod.labels),
  );
}

/** What a PodDisruptionBudget lets the Eviction API do right now, from its spec and status. */
export interface PdbAllowance {
  /** Evictions of Ready pods it allows now (0 while its status is older than its spec). */
  disruptions: number;
  /**
   * True when it lets pods that are not Ready go whatever `disruptions` says, as the Eviction API
   * does: always under `unhealthyPodEvictionPolicy: AlwaysAllow`, otherwise (IfHealthyBudget, the
   * default) while `currentHealthy >= desiredHealthy > 0`.
   */
  unhealthy: boolean;
}

/**
 * Reads a budget as the Eviction API will judge an eviction against it, so a drain sends only
 * evictions it will accept (pkg/registry/core/pod/storage/eviction.go: a pod that is not Ready is let
 * go before the budget is charged; a status with `observedGeneration` behind the spec refuses all).
 *
 * @example
 * pdbAllowance(pdb).disruptions; // 0: wait, and read the budget again
 */
export function pdbAllowance(pdb: V1PodDisruptionBudget): PdbAllowance {
  const status = pdb.status;
  const stale = (status?.observedGeneration ?? 0) < (pdb.metadata?.generation ?? 0);
  const desired = status?.desiredHealthy ?? 0;
  return {
    disruptions: stale ? 0 : Math.max(status?.disruptionsAllowed ?? 0, 0),
    unhealthy:
      pdb.spec?.unhealthyPodEvictionPolicy === 'AlwaysAllow' ||
      (desired > 0 && (status?.currentHealthy ?? 0) >= desired),
  };
}
