/**
 * Coalesces calls: while fewer than `maxInFlight` sends are in flight, a call is sent at once (with
 * whatever else waits, at most `maxBatch` items); calls that arrive while `maxInFlight` sends are in
 * flight wait and go together in the next one. `send` answers one result per item, in order; a
 * failed send fails every call in it.
 */
export function coalesce<T, R>(
  send: (items: T[]) => Promise<R[]>,
  maxBatch: number,
  maxInFlight = 1,
): (item: T) => Promise<R> {
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(`maxBatch is ${String(maxBatch)}, expected an integer >= 1`);
  }
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
    throw new RangeError(`maxInFlight is ${String(maxInFlight)}, expected an integer >= 1`);
  }
  const queue: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  let inFlight = 0;
  function pump(): void {
    if (inFlight >= maxInFlight || queue.length === 0) return;
    inFlight++;
    const batch = queue.splice(0, maxBatch);
    send(batch.map((b) => b.item))
      .then((results) => {
        if (results.length !== batch.length) {
          throw new Error(`a batch of ${batch.length} was answered with ${results.length} result(s)`);
        }
        batch.forEach((b, i) => b.resolve(results[i] as R));
      })
      .catch((err: unknown) => batch.forEach((b) => b.reject(err)))
      .finally(() => {
        inFlight--;
        pump();
      });
  }
  return (item) =>
    new Promise<R>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      pump();
    });
}
