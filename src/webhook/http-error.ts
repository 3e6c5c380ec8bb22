/**
 * An error that carries the HTTP answer: the status, a message for the caller (below 500; a 5xx
 * message goes to the log only) and optional answer fields and headers.
 */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}
