// Unlock on demand (issue 14): when the agent is locked and a local request
// needs keys, ask for the vault passphrase once, and let every request that
// arrives meanwhile wait for that one prompt. A cancelled or wrong answer
// answers them all as locked and keeps new prompts away for a back-off, so a
// script in a loop cannot flood the screen. A forwarded connection never
// causes a prompt: someone on the remote host must not be able to put a
// passphrase dialog in front of the user.

/** Who is asking (for the prompt text; the caller escapes it). */
export interface UnlockRequester {
  forwarded: boolean;
  /** The requesting process, as the prompt names it. */
  description: string;
}

export type UnlockRefusal = 'disabled' | 'forwarded' | 'backoff' | 'cancelled' | 'wrong';

export type UnlockOutcome = { unlocked: true } | { unlocked: false; reason: UnlockRefusal };

export interface UnlockOnDemandOptions {
  /** Show the passphrase prompt; resolves null when the user cancelled it. */
  askPassphrase(requester: UnlockRequester): Promise<Buffer | null>;
  /** Try the passphrase (with UNLOCK's growing delay); true when the vault is now open. */
  tryUnlock(passphrase: Buffer): Promise<boolean>;
  /** `--no-unlock-prompt` sets this false. */
  enabled?: boolean;
  /** How long after a cancelled or wrong prompt no new prompt is shown (ms). */
  backoffMs?: number;
  now?: () => number;
}

export const DEFAULT_UNLOCK_BACKOFF_MS = 30_000;

export class UnlockOnDemand {
  private inFlight: Promise<UnlockOutcome> | null = null;
  private quietUntil = -Infinity;
  private readonly now: () => number;
  private readonly backoffMs: number;
  readonly enabled: boolean;

  constructor(private readonly opts: UnlockOnDemandOptions) {
    this.now = opts.now ?? Date.now;
    this.backoffMs = opts.backoffMs ?? DEFAULT_UNLOCK_BACKOFF_MS;
    this.enabled = opts.enabled ?? true;
  }

  /** ms left of the back-off after a failed prompt (0: a request may prompt). */
  backoffLeftMs(): number {
    return Math.max(0, this.quietUntil - this.now());
  }

  /** Forget a back-off (the vault was unlocked some other way, e.g. `ssh-add -X`). */
  reset(): void {
    this.quietUntil = -Infinity;
  }

  /**
   * Called by a request that found the agent locked. Joins the prompt that is
   * up, or shows one; the first requester is the one the prompt names.
   */
  request(requester: UnlockRequester): Promise<UnlockOutcome> {
    if (!this.enabled) return Promise.resolve({ unlocked: false, reason: 'disabled' });
    if (requester.forwarded) return Promise.resolve({ unlocked: false, reason: 'forwarded' });
    if (this.inFlight) return this.inFlight;
    if (this.backoffLeftMs() > 0) return Promise.resolve({ unlocked: false, reason: 'backoff' });
    const p = this.prompt(requester).finally(() => {
      this.inFlight = null;
    });
    this.inFlight = p;
    return p;
  }

  private async prompt(requester: UnlockRequester): Promise<UnlockOutcome> {
    let passphrase: Buffer | null = null;
    let outcome: UnlockOutcome;
    try {
      passphrase = await this.opts.askPassphrase(requester);
      if (passphrase === null) outcome = { unlocked: false, reason: 'cancelled' };
      else if (await this.opts.tryUnlock(passphrase)) outcome = { unlocked: true };
      else outcome = { unlocked: false, reason: 'wrong' };
    } catch {
      // A prompt that failed to run counts as cancelled, a failed unlock as wrong.
      outcome = { unlocked: false, reason: passphrase === null ? 'cancelled' : 'wrong' };
    } finally {
      passphrase?.fill(0);
    }
    if (outcome.unlocked) this.reset();
    else this.quietUntil = this.now() + this.backoffMs;
    return outcome;
  }
}
