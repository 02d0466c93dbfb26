// The in-memory keyring: identities, their constraints, lifetimes and the lock.
// It knows nothing of sockets; the server turns requests into calls on it.

import type { Constraints, DestinationConstraint } from './constraints';
import { BindState, bindStateOf, isForwarded, loginMatchesLastBind } from './destination';
import { identityVisible, signPermitted } from './local-only';
import { LockHash, hashLockPassphrase, lockPassphraseMatches } from './lock-passphrase';
import { PassphraseAttempts } from './passphrase-attempts';
import type { Identity } from './protocol';
import { sign } from './signer';
import { decodeSignedData, SignedData } from './signed-data';
import { errorMessage } from '../ssh/error';
import type { AddResult, AgentKey, AgentService } from './service';

export interface Entry {
  key: AgentKey;
  comment: Buffer;
  confirm: boolean;
  /** Ask only when used through a forwarded connection. */
  confirmForwarded: boolean;
  /** Hops the key may be used on (ssh-add -h); empty = anywhere. */
  destinations: DestinationConstraint[];
  localOnly?: boolean; // never listed nor used on a forwarded connection (local-only.ts)
  /** This key's own approval window (ms; 0 = ask every time); undefined: the agent's. */
  confirmWindowMs?: number;
  /** Came from the vault: dropped from memory on lock, restored by unlocking the vault. */
  fromVault: boolean;
  /** ms since epoch, or undefined for no expiry. */
  expiresAt?: number;
  timer?: NodeJS.Timeout;
}

/** An identity to load, as the vault hands it over. */
export interface NewIdentity {
  key: AgentKey;
  comment: Buffer;
  constraints: Constraints;
  confirmForwarded?: boolean;
  /** Seconds (vault `--confirm-window`); undefined: the agent's window. */
  confirmWindow?: number;
}

/**
 * Opens the key store with a passphrase: the identities it holds, or null if
 * the passphrase does not open it. (The vault, wired in by the daemon.)
 */
export type Unlocker = (passphrase: Buffer) => Promise<NewIdentity[] | null>;

/** What a sign request is for, as far as the agent can tell. */
export interface SignDetails {
  /** Host names of the hops, from the matching destination constraints (null = unnamed). */
  hosts: (string | null)[];
  /** The user being logged in as, when the data is a userauth request for this key. */
  user?: string;
  forwarded: boolean;
  /** The data is a login to the session last bound (destination.ts loginMatchesLastBind): only then are `hosts` checked. */
  verified: boolean;
  signed?: SignedData; // what the data is (a login, SSHSIG, …): prompt and audit say it
}

/** Asks the user whether an identity may be used; the context says who asked. */
export type Confirmer<C> = (entry: Entry, context: C, details: SignDetails) => Promise<boolean>;

export type SignResult =
  | { ok: true; signature: Buffer; entry: Entry; details: SignDetails }
  | {
      ok: false;
      reason: 'locked' | 'unknown-key' | 'destination' | 'refused' | 'error';
      detail?: string;
      entry?: Entry;
      details?: SignDetails;
    };

/** The outcome of Keyring.add: added (or replaced), or refused and why. */
export type { AddResult };

const refused = (reason: string): AddResult => ({ ok: false, reason });

/** The connection facts the keyring's policy uses; anything else is the caller's. */
export type RequestContext = Partial<BindState>;

export interface KeyringOptions<C> {
  /** Default lifetime (seconds) for identities added without one (ssh-agent -t). */
  defaultLifetime?: number;
  /** Ask before any use through a forwarded connection, whatever the key's constraints. */
  confirmForwarded?: boolean;
  confirm?: Confirmer<C>;
  /** Base of the growing delay after a wrong unlock passphrase (OpenSSH: 100 ms). */
  unlockDelayMs?: number;
  maxIdentities?: number;
  now?: () => number;
  /** The vault: when set, its passphrase also unlocks, and loads its identities. */
  unlocker?: Unlocker;
  /** Called when the keyring locks (the vault forgets its key then). */
  onLock?: () => void;
  /** Called when a key leaves the keyring (removed, expired, locked away). */
  onDrop?: (publicBlob: Buffer) => void;
  log?: (msg: string) => void;
}

/** Locked; `hash` is the lock passphrase's (none: only the vault opens it). */
interface LockState {
  hash?: LockHash;
  hashing?: Promise<void>; // the lock passphrase, still being hashed
}

/** How a key comes in: from the vault (with its per-key defaults) or a client (ctx). */
type AddOptions = Omit<NewIdentity, 'key' | 'comment' | 'constraints'> & {
  fromVault?: boolean;
  ctx?: RequestContext;
};
type Served<C> = AgentService<C, SignResult>; // what the server serves, as the keyring serves it
export class Keyring<C extends RequestContext = RequestContext> implements Served<C> {
  private readonly entries = new Map<string, Entry>();
  /** null = unlocked; otherwise locked, and `hash` (if any) is the lock passphrase's. */
  private lockState: LockState | null = null;
  /** UNLOCK and vault passphrases: one at a time, wrong ones slowed down. */
  private readonly attempts: PassphraseAttempts;
  private readonly now: () => number;
  /** Vault identities removed by a client: not brought back by a re-read of the vault until the next unlock. */
  private readonly removedFromVault = new Set<string>();
  /** The earliest expiresAt of any entry (Infinity if none): reap() is free until then. */
  private nextExpiry = Infinity;

  constructor(private readonly opts: KeyringOptions<C> = {}) {
    this.now = opts.now ?? Date.now;
    this.attempts = new PassphraseAttempts(opts.unlockDelayMs ?? 100);
  }

  get locked(): boolean {
    return this.lockState !== null;
  }

  /** Start locked with no lock passphrase: only the vault's passphrase opens it. */
  lockForVault(): void {
    this.lockState ??= {};
    this.dropVaultKeys();
  }

  /** AgentService.ownerLock: nothing a same-uid process could learn opens it again. */
  ownerLock(vaultOpens: boolean): void {
    for (const [id, e] of this.entries) if (!e.fromVault) this.drop(id);
    if (!vaultOpens || !this.opts.unlocker) return;
    this.lockState = null; // a lock passphrase, if any, opens it no longer
    this.lockForVault();
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Identities in the order they were added, without those this connection may
   * not use (destination constraints); empty while locked, as with OpenSSH.
   */
  list(ctx?: RequestContext): Identity[] {
    if (this.locked) return [];
    this.reap();
    const state = bindStateOf(ctx);
    return [...this.entries.values()]
      .filter((e) => identityVisible(e, state))
      .map((e) => ({ keyBlob: e.key.publicBlob, comment: e.comment }));
  }

  entriesView(): readonly Entry[] {
    this.reap();
    return [...this.entries.values()];
  }

  /**
   * Add or replace an identity, or say why it is refused.
   * Re-adding a key keeps its position and takes the new comment and constraints.
   */
  add(key: AgentKey, comment: Buffer, constraints: Constraints, opts: AddOptions = {}): AddResult {
    if (this.locked) return refused('agent is locked');
    if (constraints.maxSign !== undefined) return refused('maxsign is only for XMSS keys');
    const id = key.publicBlob.toString('base64');
    const existing = this.entries.get(id);
    if (existing && !identityVisible(existing, bindStateOf(opts.ctx)))
      return refused('identity not visible to this connection');
    const limit = this.opts.maxIdentities ?? 10000;
    this.reap();
    if (!this.entries.has(id) && this.entries.size >= limit)
      return refused(`identity limit ${limit} reached`);
    const lifetime = constraints.lifetime ?? this.opts.defaultLifetime;
    // Replace in place: Map.set on an existing key keeps its position, as OpenSSH does.
    if (existing?.timer) clearTimeout(existing.timer);
    const entry: Entry = {
      key,
      comment,
      confirm: !!constraints.confirm,
      confirmForwarded: !!opts.confirmForwarded,
      destinations: constraints.destinations ?? [],
      localOnly: constraints.localOnly || undefined,
      fromVault: !!opts.fromVault,
    };
    if (opts.confirmWindow !== undefined) entry.confirmWindowMs = opts.confirmWindow * 1000;
    if (
      lifetime !== undefined &&
      lifetime >= 0 &&
      (constraints.lifetime !== undefined || lifetime > 0)
    ) {
      entry.expiresAt = this.now() + lifetime * 1000;
      // Timers only go up to ~24.8 days; reap() catches anything longer.
      this.arm(id, entry, lifetime * 1000);
      this.nextExpiry = Math.min(this.nextExpiry, entry.expiresAt);
    }
    this.entries.set(id, entry);
    return { ok: true };
  }

  remove(blob: Buffer, ctx?: RequestContext): boolean {
    if (this.locked) return false;
    this.reap();
    const id = blob.toString('base64');
    const e = this.entries.get(id);
    // An identity this connection may not see, it may not remove either.
    if (!e || !identityVisible(e, bindStateOf(ctx))) return false;
    if (e.fromVault) this.removedFromVault.add(id);
    return this.drop(id);
  }

  removeAll(): boolean {
    if (this.locked) return false;
    for (const [id, e] of [...this.entries]) {
      if (e.fromVault) this.removedFromVault.add(id);
      this.drop(id);
    }
    return true;
  }

  /** Find a usable identity by its public blob. */
  find(blob: Buffer): Entry | undefined {
    if (this.locked) return undefined;
    this.reap();
    return this.entries.get(blob.toString('base64'));
  }

  async sign(blob: Buffer, data: Buffer, flags: number, context: C): Promise<SignResult> {
    const entry = this.find(blob);
    if (!entry) return { ok: false, reason: this.locked ? 'locked' : 'unknown-key' };
    const state = bindStateOf(context);
    const forwarded = isForwarded(state);
    // Decoded once: the destination checks, the prompt and the audit record read this value.
    const signed = decodeSignedData(data, blob);
    const dest = signPermitted(entry, state, signed);
    if (!dest.ok) return { ok: false, reason: 'destination', detail: dest.reason, entry };
    const user = signed.kind === 'login' ? signed.user : undefined;
    const verified = loginMatchesLastBind(state, signed);
    const details: SignDetails = { hosts: dest.hosts, user, forwarded, verified, signed };
    const mustConfirm =
      entry.confirm || (forwarded && (entry.confirmForwarded || !!this.opts.confirmForwarded));
    if (mustConfirm) {
      const allowed = this.opts.confirm ? await this.opts.confirm(entry, context, details) : false;
      if (!allowed) return { ok: false, reason: 'refused', detail: 'user refused', entry, details };
      // The key may have been removed, or the agent locked, while the user was asked.
      if (this.find(blob) !== entry)
        return { ok: false, reason: 'refused', detail: 'key removed while asking', entry, details };
    }
    try {
      return { ok: true, signature: await sign(entry.key, data, flags), entry, details };
    } catch (e) {
      return { ok: false, reason: 'error', detail: errorMessage(e), entry, details };
    }
  }

  /**
   * Lock with a passphrase; fails if already locked. Vault identities are
   * dropped from memory; the others stay, unusable until unlocked.
   */
  async lock(passphrase: Buffer): Promise<boolean> {
    if (this.locked || passphrase.length === 0) return false;
    // Set the lock before the (async) hash so no request slips through meanwhile;
    // an unlock arriving during the hash waits for it (see unlock).
    const state: LockState = {};
    this.lockState = state;
    this.dropVaultKeys();
    state.hashing = hashLockPassphrase(passphrase).then((hash) => {
      state.hash = hash;
    });
    await state.hashing;
    return true;
  }

  /**
   * Unlock with the lock passphrase or, when there is a vault, the vault's
   * passphrase (which also loads its identities); wrong ones as in PassphraseAttempts.
   */
  unlock(passphrase: Buffer): Promise<boolean> {
    return this.attempts.run(async () => {
      const state = this.lockState;
      if (!state || passphrase.length === 0) return 'no';
      await state.hashing;
      let ok = false;
      if (state.hash) ok = await lockPassphraseMatches(state.hash, passphrase);
      const fromVault = this.opts.unlocker ? await this.opts.unlocker(passphrase) : null;
      if (!ok && !fromVault) return 'wrong';
      this.lockState = null;
      if (fromVault) {
        this.removedFromVault.clear(); // a fresh unlock serves the whole vault again
        this.replaceVaultIdentities(fromVault);
      }
      return 'yes';
    });
  }

  /** Load the vault's identities while unlocked (`tsagent unlock` after a plain ssh-add -X). */
  openVault(passphrase: Buffer): Promise<boolean> {
    return this.attempts.run(async () => {
      if (this.locked || !this.opts.unlocker) return 'no';
      const fromVault = await this.opts.unlocker(passphrase);
      if (!fromVault) return 'wrong';
      if (this.locked) return 'no'; // locked while the vault was being opened
      this.removedFromVault.clear();
      this.replaceVaultIdentities(fromVault);
      return 'yes';
    });
  }

  /**
   * Make the vault identities in memory exactly `ids` (after an unlock, or when
   * the vault file changed): others are dropped, present ones updated in place.
   */
  replaceVaultIdentities(ids: NewIdentity[]): void {
    if (this.locked) return;
    const keep = new Set(ids.map((i) => i.key.publicBlob.toString('base64')));
    for (const [id, e] of this.entries) if (e.fromVault && !keep.has(id)) this.drop(id);
    for (const i of ids) {
      if (this.removedFromVault.has(i.key.publicBlob.toString('base64'))) continue;
      const added = this.add(i.key, i.comment, i.constraints, {
        fromVault: true,
        confirmForwarded: i.confirmForwarded,
        confirmWindow: i.confirmWindow,
      });
      if (!added.ok) this.opts.log?.(`vault key not loaded: ${added.reason}`);
    }
  }

  private dropVaultKeys(): void {
    for (const [id, e] of this.entries) if (e.fromVault) this.drop(id);
    this.opts.onLock?.();
  }

  /** Drop every identity and cancel timers (shutdown). */
  clear(): void {
    for (const id of [...this.entries.keys()]) this.drop(id);
  }

  private drop(id: string): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    if (e.timer) clearTimeout(e.timer);
    this.entries.delete(id);
    this.opts.onDrop?.(e.key.publicBlob);
    return true;
  }

  /**
   * Expire an entry on time (real time: timers are real). setTimeout caps at
   * ~24.8 days, so a longer lifetime re-arms until it is due.
   */
  private arm(id: string, entry: Entry, ms: number): void {
    const due = Date.now() + ms;
    const tick = () => {
      if (this.entries.get(id) !== entry) return;
      const left = due - Date.now();
      if (left <= 0) {
        this.drop(id);
        return;
      }
      entry.timer = setTimeout(tick, Math.min(left, 2 ** 31 - 1));
      entry.timer.unref();
    };
    entry.timer = setTimeout(tick, Math.min(ms, 2 ** 31 - 1));
    entry.timer.unref();
  }

  /** Drop expired entries. Walks the keys only when the earliest expiry has come. */
  private reap(): void {
    const t = this.now();
    if (t < this.nextExpiry) return;
    let next = Infinity;
    for (const [id, e] of this.entries) {
      if (e.expiresAt === undefined) continue;
      if (e.expiresAt <= t) this.drop(id);
      else next = Math.min(next, e.expiresAt);
    }
    this.nextExpiry = next;
  }
}
