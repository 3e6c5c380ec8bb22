/**
 * Remediation classes: what fleetmedic does about a GPU fault, ordered from least to most severe.
 *
 * The order is a total order so that combining evidence is a plain maximum:
 *
 * | class              | node action                                              |
 * |--------------------|----------------------------------------------------------|
 * | `ignore`           | nothing                                                  |
 * | `restart-app`      | the workload restarts; the node stays in service         |
 * | `reset-gpu`        | quarantine, drain, automatic GPU reset, validate         |
 * | `reboot-node`      | quarantine, drain, reboot after an operator approves     |
 * | `needs-operator`   | quarantine, drain, wait for an operator to decide        |
 * | `replace-hardware` | quarantine, drain, the GPU or board must be replaced     |
 *
 * `needs-operator` ranks above `reboot-node` and below `replace-hardware`:
 * - above `reboot-node`, because it means "something we do not understand happened": a reboot might
 *   clear the symptom but not the cause, so no automatic path may pick a lighter repair than an
 *   operator's look. It is never lowered by later evidence.
 * - below `replace-hardware`, because evidence that the hardware is broken (for example a failed row
 *   remapping) is the most specific diagnosis there is, and replacing hardware is operator work too:
 *   nothing is lost by saying so.
 *
 * Evidence only ever escalates a class ({@link maxClass}, {@link escalate}); nothing in this module
 * lowers one.
 */

/** Every remediation class, from least to most severe. The index of a class is its severity. */
export const REMEDIATION_CLASSES = [
  'ignore',
  'restart-app',
  'reset-gpu',
  'reboot-node',
  'needs-operator',
  'replace-hardware',
] as const;

/** What fleetmedic does about a fault; see the module documentation for the order and its reasons. */
export type RemediationClass = (typeof REMEDIATION_CLASSES)[number];

const SEVERITY: Readonly<Record<RemediationClass, number>> = {
  ignore: 0,
  'restart-app': 1,
  'reset-gpu': 2,
  'reboot-node': 3,
  'needs-operator': 4,
  'replace-hardware': 5,
};

/**
 * True when `value` is one of {@link REMEDIATION_CLASSES}.
 *
 * @param value - anything, typically a configuration value or a decoded signal payload
 */
export function isRemediationClass(value: unknown): value is RemediationClass {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(SEVERITY, value);
}

/**
 * The severity of a class: its index in {@link REMEDIATION_CLASSES} (0 for `ignore`).
 *
 * @example severityOf('reset-gpu') // 2
 */
export function severityOf(cls: RemediationClass): number {
  return SEVERITY[cls];
}

/**
 * Orders two classes by severity: negative when `a` is less severe than `b`, 0 when equal, positive
 * otherwise. Suitable for `Array.prototype.sort`.
 */
export function compareClasses(a: RemediationClass, b: RemediationClass): number {
  return SEVERITY[a] - SEVERITY[b];
}

/**
 * The more severe of two classes. Combining evidence with this function can only escalate.
 *
 * @example maxClass('reboot-node', 'needs-operator') // 'needs-operator'
 */
export function maxClass(a: RemediationClass, b: RemediationClass): RemediationClass {
  return SEVERITY[b] > SEVERITY[a] ? b : a;
}

/**
 * Escalates `current` by every class in `evidence`: the result is the most severe of them all and is
 * never less severe than `current`.
 *
 * @param current - the class decided so far (for example the alert's classification)
 * @param evidence - classes suggested by further evidence; lighter ones are ignored
 * @example escalate('reset-gpu', 'ignore', 'replace-hardware') // 'replace-hardware'
 */
export function escalate(
  current: RemediationClass,
  ...evidence: readonly RemediationClass[]
): RemediationClass {
  return evidence.reduce<RemediationClass>(maxClass, current);
}

/**
 * True when the class takes the node out of service at once (label, NoSchedule taint, cordon): every
 * class from `reset-gpu` up. `restart-app` keeps the node schedulable because the fault was the
 * application's, not the GPU's.
 */
export function requiresQuarantine(cls: RemediationClass): boolean {
  return SEVERITY[cls] >= SEVERITY['reset-gpu'];
}

/**
 * True when the repair waits for an operator: a reboot, an unexplained fault or a hardware
 * replacement. `reset-gpu` is the only node-level repair fleetmedic performs on its own.
 */
export function requiresOperator(cls: RemediationClass): boolean {
  return SEVERITY[cls] >= SEVERITY['reboot-node'];
}

/** A one-line description of what the class means for the node, for summaries and reasons. */
export function describeClass(cls: RemediationClass): string {
  switch (cls) {
    case 'ignore':
      return 'no action';
    case 'restart-app':
      return 'restart the application; the node stays in service';
    case 'reset-gpu':
      return 'quarantine, drain and reset the GPU';
    case 'reboot-node':
      return 'quarantine, drain and reboot the node (operator approval)';
    case 'needs-operator':
      return 'quarantine, drain and wait for an operator';
    case 'replace-hardware':
      return 'quarantine, drain and replace the hardware';
  }
}
