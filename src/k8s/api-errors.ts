import { ApiException } from '@kubernetes/client-node';

/** True when `err` is a Kubernetes API error with the given HTTP status (any status when omitted). */
export function isApiError(err: unknown, status?: number): err is ApiException<unknown> {
  return err instanceof ApiException && (status === undefined || err.code === status);
}

/** The HTTP status of a Kubernetes API error, or undefined for other errors (network, parse). */
export function apiErrorStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}
