import type {
  AutomationAnswer,
  BudgetView,
  DecisionAlias,
  DecisionName,
  NodeRemediation,
  OperatorService,
  RemediationRow,
} from '../../src/client/operator-client.js';
import type { OperatorAction } from '../../src/contracts/fleet-budget.js';
import type { OperatorDecision } from '../../src/contracts/remediation.js';

export const BUDGET: BudgetView = {
  workflowId: 'fleet-budget/fmunit',
  paused: false,
  inUse: 0,
  rebuilding: false,
  limit: 1,
  draining: [],
  breaker: { state: 'closed' },
  healthyNodes: 4,
  gpuNodeCount: 4,
  minHealthyFraction: 0.51,
  queued: [],
};

/** Records every call; `fail` makes the next calls throw; `nodes` answers `node()` for a name. */
export class FakeOperator implements OperatorService {
  readonly calls: unknown[][] = [];
  fail: Error | undefined;
  readonly nodes = new Map<string, NodeRemediation>();

  private answer<T>(call: unknown[], value: T): Promise<T> {
    this.calls.push(call);
    return this.fail ? Promise.reject(this.fail) : Promise.resolve(value);
  }
  decide(node: string, decision: DecisionName | DecisionAlias, by: OperatorDecision) {
    return this.answer(['decide', node, decision, by], `${decision} accepted for ${node}`);
  }
  setPaused(paused: boolean, action: OperatorAction) {
    const answer: AutomationAnswer = { paused, by: action.by, effect: 'x', budget: { ...BUDGET, paused } };
    return this.answer(['setPaused', paused, action], answer);
  }
  resetBreaker(action: OperatorAction) {
    return this.answer(['resetBreaker', action], BUDGET);
  }
  list(filter?: object) {
    return this.answer<RemediationRow[]>(['list', filter], []);
  }
  node(node: string) {
    return this.answer(
      ['node', node],
      this.nodes.get(node) ?? ({ workflowId: `remediation/fmunit/${node}` } as NodeRemediation),
    );
  }
  budget() {
    return this.answer(['budget'], BUDGET);
  }
}
