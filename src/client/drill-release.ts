import { describeOutcome, type DrillReaper, type ReapOutcome } from '../drill/reaper.js';
import { OperatorError } from './operator-client.js';

/**
 * The answer of `release` on a node a drill cordoned: the reaper reverted it (its drill's run is
 * closed), or a refusal that says how to stop a running drill. The CLI and the HTTP route give it.
 *
 * @throws OperatorError `refused` while the drill runs, `unavailable` when its run could not be read
 *   or the revert failed.
 */
export function drillReleaseAnswer(o: ReapOutcome): string {
  const { node, drillId, workflowId } = o.cordon;
  if (o.result === 'uncordoned' || o.result === 'released') return `release ${node}: ${describeOutcome(o)}`;
  if (o.run.state === 'running') {
    throw new OperatorError(
      'refused',
      `release refused: node ${node} is cordoned by drill ${drillId}, whose workflow ${workflowId} is ` +
        `running (no remediation to release). Stop the drill instead: \`fleetmedic drill-cancel ${drillId}\` ` +
        `(or cancel its workflow: \`temporal workflow cancel --workflow-id ${workflowId}\`, Cancel in the Temporal UI); its ` +
        'rollback uncordons the node. A drill terminated without rollback is reverted by `release` or ' +
        "the control worker's reaper",
    );
  }
  throw new OperatorError(
    o.run.state === 'unknown' || o.result === 'failed' ? 'unavailable' : 'refused',
    `release ${node}: ${describeOutcome(o)}`,
  );
}

/**
 * `release` of a node, as far as drills go: the answer when a drill's ownership record is on the node
 * ({@link drillReleaseAnswer}; its cordon is reverted when the drill's run is closed), undefined when
 * none is (the release goes to the node's remediation).
 *
 * @throws OperatorError `unavailable` when the node cannot be read, and as {@link drillReleaseAnswer}.
 */
export function drillRelease(reaper: Pick<DrillReaper, 'reapNode'>) {
  return async (node: string): Promise<string | undefined> => {
    let outcome: ReapOutcome | undefined;
    try {
      outcome = await reaper.reapNode(node);
    } catch (err) {
      throw new OperatorError(
        'unavailable',
        `release ${node}: cannot read the node to check for a drill's cordon: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return outcome === undefined ? undefined : drillReleaseAnswer(outcome);
  };
}
