/**
 * Reading a JSON-valued annotation that fleetmedic writes on a node: absent, parsed, or invalid with
 * the parser's error (the caller decides what invalid means: for a hold, held; for an ownership
 * record, refused).
 */
export type AnnotationJson =
  | { readonly kind: 'absent' }
  | { readonly kind: 'json'; readonly raw: string; readonly value: unknown }
  | { readonly kind: 'invalid'; readonly raw: string; readonly error: string };

/** @example readAnnotationJson('{"by":"bob"}') // { kind: 'json', value: { by: 'bob' } } */
export function readAnnotationJson(raw: string | undefined): AnnotationJson {
  if (raw === undefined) return { kind: 'absent' };
  try {
    return { kind: 'json', raw, value: JSON.parse(raw) as unknown };
  } catch (err) {
    return { kind: 'invalid', raw, error: `not JSON: ${(err as Error).message}` };
  }
}
