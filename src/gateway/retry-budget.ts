/**
 * Envoy's retry budget: at most `max(minConcurrent, budgetPercent % of the requests in flight)`
 * retries run at once, so a brown-out is not amplified by the retries it causes.
 *
 * @example
 * const budget = new RetryBudget({ budgetPercent: 20, minConcurrent: 3 });
 * budget.requestStarted();
 * if (budget.tryAcquire()) { try { await retry(); } finally { budget.release(); } }
 * budget.requestEnded();
 */
export class RetryBudget {
  private active = 0;
  private retrying = 0;

  constructor(private readonly options: { readonly budgetPercent: number; readonly minConcurrent: number }) {}

  /** Requests in flight (retries included, as they belong to one of them). */
  get activeRequests(): number {
    return this.active;
  }

  /** Retries running now. */
  get activeRetries(): number {
    return this.retrying;
  }

  /** Retries allowed at once with the current load. */
  get limit(): number {
    return Math.max(this.options.minConcurrent, Math.floor((this.active * this.options.budgetPercent) / 100));
  }

  requestStarted(): void {
    this.active++;
  }

  requestEnded(): void {
    if (this.active > 0) this.active--;
  }

  /** Takes a retry slot when the budget has one; the caller must `release()` it when the retry ends. */
  tryAcquire(): boolean {
    if (this.retrying >= this.limit) return false;
    this.retrying++;
    return true;
  }

  release(): void {
    if (this.retrying > 0) this.retrying--;
  }
}
