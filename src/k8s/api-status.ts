import { ApiException } from '@kubernetes/client-node';

/**
 * The API server's own explanation of a failed call: the `message` of the `Status` object in the
 * response body (e.g. `nodes "gpu-node-1" is forbidden: User "system:serviceaccount:..." cannot patch
 * resource "nodes"`). client-node 1.4 puts the raw body, headers included, into `ApiException.message`,
 * which is too noisy for a failure an operator reads in the Temporal UI.
 */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    let status: unknown = body;
    if (typeof body === 'string') {
      try {
        status = JSON.parse(body);
      } catch {
        status = undefined;
        if (body.trim() !== '') return `HTTP ${err.code}: ${body.trim().slice(0, 500)}`;
      }
    }
    if (typeof status === 'object' && status !== null && 'message' in status) {
      const { message } = status;
      if (typeof message === 'string' && message !== '') return message;
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
