import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * fleetmedic's custom search attributes, registered with the Temporal server by `fleetmedic up` (and by
 * the test harness), so operators can filter the Temporal UI by cluster, node, phase, alert and outcome.
 * Every workflow carries the cluster ID: two clusters may share a Temporal namespace.
 */
export const CLUSTER_ID = defineSearchAttributeKey('FleetmedicCluster', SearchAttributeType.KEYWORD);
export const NODE = defineSearchAttributeKey('FleetmedicNode', SearchAttributeType.KEYWORD);
export const PHASE = defineSearchAttributeKey('FleetmedicPhase', SearchAttributeType.KEYWORD);
export const ALERT = defineSearchAttributeKey('FleetmedicAlert', SearchAttributeType.KEYWORD);
export const OUTCOME = defineSearchAttributeKey('FleetmedicOutcome', SearchAttributeType.KEYWORD);

/** Every custom search attribute, for registration. */
export const SEARCH_ATTRIBUTES = [CLUSTER_ID, NODE, PHASE, ALERT, OUTCOME] as const;
