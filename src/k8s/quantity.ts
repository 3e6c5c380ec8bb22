/**
 * Kubernetes resource quantities (`100m`, `1.5Gi`, `8`, `1e3`) as plain numbers. client-node's
 * `quantityToScalar` rejects fractional binary quantities such as `1.5Gi` and returns a mix of number
 * and bigint; a capacity check wants one number per resource. Doubles are exact for every count and
 * millicore value and within a byte for memory below 8 PiB, which is all a node reports.
 */

const SUFFIX_FACTORS: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$/;

/**
 * Parses a Kubernetes quantity into a number of base units (cores for `cpu`, bytes for memory, a count
 * for extended resources such as `nvidia.com/gpu`).
 *
 * @throws RangeError naming the value when it is not a quantity.
 * @example parseQuantity('250m') // 0.25
 * @example parseQuantity('1.5Gi') // 1610612736
 */
export function parseQuantity(value: string): number {
  const match = QUANTITY.exec(value.trim());
  if (!match) throw new RangeError(`${JSON.stringify(value)} is not a Kubernetes quantity`);
  const [, digits, exponent, suffix] = match;
  const base = Number(digits);
  if (exponent) return base * 10 ** Number(exponent.slice(1));
  return base * (SUFFIX_FACTORS[suffix ?? ''] ?? 1);
}

/** Like {@link parseQuantity}, but 0 for a missing or malformed value (a node status we only report). */
export function quantityOrZero(value: string | undefined): number {
  if (value === undefined) return 0;
  try {
    return parseQuantity(value);
  } catch {
    return 0;
  }
}
