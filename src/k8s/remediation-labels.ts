/**
 * The label, taint and annotations fleetmedic writes on a node it remediates. They live beside (not in)
 * `labels.ts` because they belong to the remediation procedure: a node carrying any of them is one
 * fleetmedic has taken out of service and must either return or leave with a visible reason.
 */

/** Label on a node fleetmedic quarantined (value `true`): selectable with `-l fleetmedic.io/quarantined`. */
export const QUARANTINED_LABEL = 'fleetmedic.io/quarantined';

/**
 * Taint key of fleetmedic's quarantine. Always with effect {@link QUARANTINE_TAINT_EFFECT}: a NoExecute
 * taint would make the kubelet evict every pod at once, past PodDisruptionBudgets. The GPU DaemonSets
 * (node agent, dcgm-exporter, device plugin) must tolerate it, or a node under quarantine cannot be
 * validated.
 */
export const QUARANTINE_TAINT_KEY = 'fleetmedic.io/quarantine';

/** The only effect fleetmedic's quarantine taint ever has. */
export const QUARANTINE_TAINT_EFFECT = 'NoSchedule';

/**
 * Annotation recording who quarantined (cordoned) the node: JSON `CordonRecord` from node-ownership.ts
 * (`{ workflowId, runId?, reason, at, preexistingCordon }`). Release checks it so fleetmedic never lifts a
 * quarantine another workflow owns, and never uncordons a node someone else had cordoned.
 */
export const CORDON_ANNOTATION = 'fleetmedic.io/cordon';

/**
 * Annotation holding a JSON array of ISO-8601 timestamps, one per remediation of the node. It is the
 * durable count behind "remediated twice in 7 days -> replace hardware": Temporal forgets closed
 * workflows after the namespace retention, the node does not.
 */
export const REMEDIATIONS_ANNOTATION = 'fleetmedic.io/remediations';

/** How many remediation timestamps the annotation keeps (newest last). */
export const MAX_REMEDIATION_RECORDS = 20;

/** Marks a static pod's mirror on the API server; a mirror pod cannot be evicted (kubelet owns it). */
export const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';

/**
 * Annotation holding the fault episodes fleetmedic handled on the node, one entry per alert
 * fingerprint (see episodes.ts). Temporal forgets closed workflows; the node keeps this, so an
 * alert Alertmanager re-sends for a repaired fault starts nothing.
 */
export const EPISODES_ANNOTATION = 'fleetmedic.io/handled-episodes';

/**
 * Annotation marking a node an operator rejected (sent for RMA, say): JSON `NodeHold` from
 * node-hold.ts. It outlives the run that wrote it, so a later run keeps the node quarantined; only an
 * explicit operator action (release, mark-repaired) clears it, and `releaseNode` refuses while it is on.
 */
export const HOLD_ANNOTATION = 'fleetmedic.io/hold';

/**
 * Prefix of a drill's owner in the ownership record (`drill/<drill ID>`): a remediation that starts
 * on a node a drill cordoned takes the cordon over (the node may have a real fault).
 */
export const DRILL_OWNER_PREFIX = 'drill/';
