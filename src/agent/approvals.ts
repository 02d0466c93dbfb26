// Approval windows (issue 14): after the user said "yes" to a confirm prompt,
// further uses of the same key, from the same terminal session, for the same
// destination (or the same kind of data) are allowed without asking again
// until the window's life has passed since that yes. A forwarded use never
// rides on a local approval and the other way round.

import type { SignedData } from './signed-data';

/** What one approval covers: every field must match for a later use to ride on it. */
export interface ApprovalScope {
  /** The key's public blob. */
  key: Buffer;
  /** The requesting process's session id (/proc/PID/stat field 6). */
  session: number;
  forwarded: boolean;
  /** From approvalDestination(): a verified host key for logins, else the kind of data. */
  destination: string;
}

/** An open window, as `tsagent status` lists it. */
export interface OpenApproval {
  id: number;
  key: Buffer;
  session: number;
  forwarded: boolean;
  destination: string;
  approvedAt: number;
  /** ms until the window closes. */
  remainingMs: number;
  /** How many uses rode on it so far. */
  uses: number;
}

interface Entry {
  id: number;
  scope: ApprovalScope;
  approvedAt: number;
  lifeMs: number;
  uses: number;
}

export interface ApprovalWindowsOptions {
  /** The agent-wide window (`--confirm-window`), ms; 0 = ask every time (the default). */
  lifeMs?: number;
  /** Injectable clock (ms). */
  now?: () => number;
  /** Bound on open windows; the oldest goes first. */
  maxEntries?: number;
}

/**
 * The destination part of an approval scope for the data being signed, or null
 * when no window may cover it: a login whose host was not verified (hardening
 * issue: an unverified destination is only a claim) never opens or uses one.
 */
export function approvalDestination(data: SignedData, verifiedHostKey?: Buffer): string | null {
  switch (data.kind) {
    case 'login':
      return verifiedHostKey ? `login:${verifiedHostKey.toString('base64')}` : null;
    case 'sshsig':
      return `sshsig:${data.namespace}`;
    case 'unknown':
      return 'unknown';
  }
}

function scopeId(s: ApprovalScope): string {
  // JSON keeps the fields apart whatever the destination string holds.
  return JSON.stringify([s.key.toString('base64'), s.session, s.forwarded, s.destination]);
}

export class ApprovalWindows {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly maxEntries: number;
  private nextId = 1;
  lifeMs: number;

  constructor(opts: ApprovalWindowsOptions = {}) {
    this.lifeMs = opts.lifeMs ?? 0;
    this.now = opts.now ?? Date.now;
    this.maxEntries = opts.maxEntries ?? 256;
  }

  /** The life that applies to a key: its own window when it has one, else the agent's. */
  private life(keyLifeMs: number | undefined): number {
    return keyLifeMs ?? this.lifeMs;
  }

  /**
   * Record a "yes". Returns false (and records nothing) when the window for
   * this key is 0, i.e. every use asks.
   */
  approve(scope: ApprovalScope, keyLifeMs?: number): boolean {
    const lifeMs = this.life(keyLifeMs);
    if (!(lifeMs > 0)) return false;
    const id = scopeId(scope);
    this.entries.delete(id);
    this.entries.set(id, {
      id: this.nextId++,
      scope: { ...scope, key: Buffer.from(scope.key) },
      approvedAt: this.now(),
      lifeMs,
      uses: 0,
    });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    return true;
  }

  /**
   * Does an open window cover this use? Counts the use and returns the window
   * (for the audit record: "covered by approval N"), else undefined. The life
   * is the shorter of the one at the yes and the key's current one, so a
   * window set to 0 meanwhile closes at once.
   */
  use(scope: ApprovalScope, keyLifeMs?: number): OpenApproval | undefined {
    const id = scopeId(scope);
    const e = this.entries.get(id);
    if (!e) return undefined;
    const life = Math.min(e.lifeMs, this.life(keyLifeMs));
    const now = this.now();
    const remainingMs = e.approvedAt + life - now;
    // A clock stepped backwards must not stretch a window either.
    if (!(remainingMs > 0) || now < e.approvedAt) {
      this.entries.delete(id);
      return undefined;
    }
    e.uses++;
    return this.describe(e, remainingMs);
  }

  private describe(e: Entry, remainingMs: number): OpenApproval {
    return {
      id: e.id,
      key: e.scope.key,
      session: e.scope.session,
      forwarded: e.scope.forwarded,
      destination: e.scope.destination,
      approvedAt: e.approvedAt,
      remainingMs,
      uses: e.uses,
    };
  }

  /** The open windows with time left, soonest to close first. */
  list(): OpenApproval[] {
    const now = this.now();
    const out: OpenApproval[] = [];
    for (const [id, e] of this.entries) {
      const remainingMs = e.approvedAt + e.lifeMs - now;
      if (remainingMs > 0 && now >= e.approvedAt) out.push(this.describe(e, remainingMs));
      else this.entries.delete(id);
    }
    return out.sort((a, b) => a.remainingMs - b.remainingMs || a.id - b.id);
  }

  /** End every window for one key (it was removed or its window changed). */
  forgetKey(key: Buffer): void {
    for (const [id, e] of this.entries) if (e.scope.key.equals(key)) this.entries.delete(id);
  }

  /** End every window: lock, auto-lock, `tsagent approvals clear`. */
  clear(): void {
    this.entries.clear();
  }
}
