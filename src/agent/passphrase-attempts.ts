// Passphrase attempts (UNLOCK with the lock or the vault passphrase): one at a
// time, and a wrong one answered after a delay that grows with each failure
// (100 ms steps up to 10 s, as OpenSSH's ssh-agent.c process_lock_agent), so
// parallel connections cannot guess faster.

/** What an attempt came to: opened, not applicable (nothing counted), or a wrong guess. */
export type AttemptOutcome = 'yes' | 'no' | 'wrong';

export class PassphraseAttempts {
  private failures = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly delayMs = 100) {}

  /** Run one attempt after those before it; true if it opened. */
  run(fn: () => Promise<AttemptOutcome>): Promise<boolean> {
    const run = this.queue.then(async () => {
      const outcome = await fn();
      if (outcome === 'yes') this.failures = 0;
      if (outcome === 'wrong') {
        this.failures = Math.min(this.failures + 1, 100);
        const ms = this.delayMs * this.failures;
        await new Promise<void>((r) => setTimeout(r, ms));
      }
      return outcome === 'yes';
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}
