/**
 * Requests a service has taken and not finished. `close()` of the jobs service and the streams server waits for them,
 * so a device's last request is still answered (its final update, its last blocks), but only for a grace period: a
 * publish stuck on a lost connection must not hold shutdown forever.
 */
export const CLOSE_GRACE_MS = 2_000; // milliseconds

export class Inflight {
  private readonly pending = new Set<Promise<void>>();

  /** Runs `task`, logging rather than throwing its failure through `onError`, and keeps it until it settles. */
  track(task: Promise<void>, onError: (error: unknown) => void): void {
    const tracked: Promise<void> = task.catch(onError).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  /** Resolves when everything tracked has settled, or after `graceMs`, whichever is first. */
  async settle(graceMs: number = CLOSE_GRACE_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.pending]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
