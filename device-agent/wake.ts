/**
 * A level-triggered wake-up for a loop that sleeps between events: `notify()` while nobody waits is not lost (the
 * next `wait` returns at once), and a `wait` leaves nothing behind — its timer is cleared and its abort listener
 * removed whichever way it ends.
 */
export class Wake {
  private notified = false;
  private resolve: (() => void) | undefined;

  notify(): void {
    this.notified = true;
    this.resolve?.();
  }

  /** Resolves on a notify (or one since the last wait), after `ms` when given, or when `signal` aborts. */
  async wait(ms: number | undefined, signal?: AbortSignal): Promise<void> {
    if (this.notified || signal?.aborted === true) {
      this.notified = false;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    let wakeUp: (() => void) | undefined;
    try {
      await new Promise<void>((resolve) => {
        wakeUp = () => resolve();
        this.resolve = wakeUp;
        if (ms !== undefined) timer = setTimeout(wakeUp, ms);
        signal?.addEventListener('abort', wakeUp, { once: true });
      });
    } finally {
      this.resolve = undefined;
      this.notified = false;
      clearTimeout(timer);
      if (wakeUp !== undefined) signal?.removeEventListener('abort', wakeUp);
    }
  }
}
