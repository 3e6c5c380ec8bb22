/**
 * Activity input validation with zod, in one place: a mismatch is a non-retryable `InvalidInput`
 * naming the activity, the field, the value received and its type (the same input fails every retry).
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType } from '../errors.js';

/** A Kubernetes object name (RFC 1123 subdomain), as node names are. */
export const objectName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes object name');

/** An integer from `min` to `max`. */
export function int(min: number, max: number) {
  return z.number().int().min(min).max(max);
}

/** An array of non-empty strings. */
export const nonEmptyStrings = z.array(z.string().min(1, 'must not be empty'));

/** A non-empty string of at most `max` characters. */
export function text(max: number) {
  return z.string().min(1, 'must not be empty').max(max);
}

function describeValue(value: unknown): string {
  const type = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  const text = JSON.stringify(value) ?? String(value);
  return `${text.length > 200 ? `${text.slice(0, 200)}...` : text} (${type})`;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * Parses `input` with `schema`.
 *
 * @throws non-retryable `ApplicationFailure` of type `InvalidInput`, e.g.
 *   `checkEpisode: input.node: must be a Kubernetes object name, got "Not_A_Name" (string)`.
 * @example
 * const { node } = validateInput('clearHold', z.object({ node: objectName }), input);
 */
export function validateInput<S extends z.ZodType>(activity: string, schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.slice(0, 5).map((issue) => {
    const field = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    return `input${field}: ${issue.message}, got ${describeValue(valueAt(input, issue.path))}`;
  });
  throw ApplicationFailure.nonRetryable(`${activity}: ${problems.join('; ')}`, FailureType.InvalidInput);
}
