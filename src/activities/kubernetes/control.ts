/**
 * How the Kubernetes activities run their work: the activity context (absent in plain unit tests),
 * cancellation, waits that end early, and a bounded pool of tasks.
 */
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';

/** The activity context, or undefined when called outside a worker (plain unit tests). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

function cancellation(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new CancelledFailure('activity cancelled');
}

export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancellation(signal);
}

/**
 * Waits `ms`; rejects at once when the activity is cancelled, resolves early when `stop` fires (another
 * eviction task failed, the node is gone) so no task sleeps past the end of the drain.
 */
export function pause(ms: number, cancel: AbortSignal | undefined, stop?: AbortSignal): Promise<void> {
  throwIfCancelled(cancel);
  if (stop?.aborted || ms <= 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      cancel?.removeEventListener('abort', onCancel);
      stop?.removeEventListener('abort', onStop);
    };
    const onCancel = () => {
      done();
      reject(cancellation(cancel!));
    };
    const onStop = () => {
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    cancel?.addEventListener('abort', onCancel, { once: true });
    stop?.addEventListener('abort', onStop, { once: true });
  });
}

/**
 * Runs `work` over `items` with at most `concurrency` in flight. The first failure stops the others
 * from starting new items; the pool still waits for the ones in flight (an eviction request already
 * sent must be recorded before the activity ends), then rethrows that first failure.
 */
export async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  stop: AbortController,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!stop.signal.aborted && next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  if (failure) throw failure.error;
}
