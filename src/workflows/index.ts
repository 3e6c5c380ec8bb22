/**
 * Every workflow of fleetmedic, for the worker's bundler. Workflow code only: deterministic, no Node
 * builtins, activities imported as types.
 */
export { fleetBudgetWorkflow } from './fleet-budget.js';
export { gpuRemediationWorkflow } from './remediation/workflow.js';
export { checkpointBackupWorkflow } from './checkpoint.js';
export { clusterIdentityWorkflow } from './cluster-identity.js';
export { drillWorkflow } from './drill/workflow.js';
export { scheduledDrillWorkflow } from './drill/scheduled.js';
