// The agent's side of the vault: opening it with a passphrase, turning its
// identities into keyring identities with their per-key defaults, noticing
// changes the CLI writes while the agent runs, and recording last use.
// Security keys become device keys with their stored provider, through the
// same check as an ssh-add of an sk key (DeviceKeys.securityKey).

import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import { destinationsFromSpecs } from '../agent/destination';
import type { NewIdentity } from '../agent/keyring';
import { keysForHost } from '../agent/known-hosts';
import type { DeviceKey } from '../agent/device-key';
import type { DeviceResult } from '../agent/device-keys';
import { readPrivateKey } from '../ssh/privatekey';
import { isSkKeyType, readSkPrivateKey, SkPrivateKey } from '../ssh/sk-key';
import { errorMessage } from '../ssh/error';
import { WireReader } from '../ssh/wire';
import type { VaultFile } from '../vault/store';
import type { UnlockedVault } from '../vault/unlocked';
import type { VaultIdentity } from '../vault/format';
import { KnownHostsCache } from './known-hosts-cache';

/** How often the agent writes `lastUsed` back to the vault, at most, per key. */
const TOUCH_INTERVAL_MS = 60_000;

export class VaultBridge {
  private file: VaultFile | null = null;
  private open: UnlockedVault | null = null;
  private watcher: fs.FSWatcher | null = null;
  /** Follows ~/.ssh/known_hosts, where --allow hosts are looked up. */
  private knownHostsWatcher: fs.FSWatcher | null = null;
  private readonly touched = new Map<string, number>();
  /**
   * When each key was first served since the unlock (ms). A lifetime runs from
   * then: re-reading the changed vault must neither re-arm it nor bring back a
   * key whose lifetime is over.
   */
  private readonly servedSince = new Map<string, number>();
  /** Counts changes handed on, so a slower earlier one is not applied after a later one. */
  private changes = 0;
  /**
   * Makes a security key of the vault a device key with its provider: the
   * same check as an ADD_IDENTITY with sk-provider (DeviceKeys.securityKey,
   * the -P allow-list). Wired by serve.ts; without it sk keys are not loaded.
   */
  securityKey?: (key: SkPrivateKey, provider: string) => Promise<DeviceResult<DeviceKey>>;

  constructor(
    readonly vaultPath: string,
    private readonly log: (msg: string) => void,
    /** Receives the new identity list when the vault file changes while open. */
    private readonly onChange: (ids: NewIdentity[]) => void,
    /** The agent's default lifetime (-t), for keys without their own, in seconds. */
    private readonly defaultLifetime?: number,
    /** Where --allow hosts are looked up. */
    private readonly knownHosts: KnownHostsCache = new KnownHostsCache(),
  ) {}

  private vaultFile(): VaultFile {
    if (!this.file) {
      const { VaultFile } = require('../vault/store') as typeof import('../vault/store');
      this.file = new VaultFile(this.vaultPath);
    }
    return this.file;
  }

  get present(): boolean {
    return fs.existsSync(this.vaultPath);
  }

  get loaded(): boolean {
    return this.open !== null;
  }

  /** Open with a passphrase: the identities, or null if it does not open the vault. */
  async unlock(passphrase: Buffer): Promise<NewIdentity[] | null> {
    if (!this.present) {
      this.log(`vault ${this.vaultPath}: not there, no vault keys to load`);
      return null;
    }
    try {
      const uv = await this.vaultFile().unlock(passphrase);
      this.forget();
      this.open = uv;
      this.watch();
      return await this.identities(uv.identities);
    } catch (e) {
      const code = (e as { code?: string }).code;
      this.log(
        code === 'WRONG_PASSPHRASE'
          ? `vault ${this.vaultPath}: the passphrase given does not open it`
          : `vault ${this.vaultPath}: ${errorMessage(e)}`,
      );
      return null;
    }
  }

  /** Forget the decrypted vault and its key (the agent locked). */
  forget(): void {
    this.open?.lock();
    this.open = null;
    this.watcher?.close();
    this.watcher = null;
    this.knownHostsWatcher?.close();
    this.knownHostsWatcher = null;
    this.servedSince.clear();
  }

  /**
   * Note that a key was used; written to the vault at most once a minute per
   * key, after the current event (the signature reply) is done: never before it.
   */
  touch(publicBlob: Buffer): void {
    const open = this.open;
    if (!open || !open.identities.some((i) => i.publicBlob.equals(publicBlob))) return;
    const id = publicBlob.toString('base64');
    const now = Date.now();
    if (now - (this.touched.get(id) ?? 0) < TOUCH_INTERVAL_MS) return;
    this.touched.set(id, now);
    setImmediate(() => {
      if (this.open !== open) return; // locked (or re-opened) meanwhile
      try {
        const reloads = open.reloads;
        open.touch(publicBlob);
        if (open.reloads !== reloads) this.changed(open); // it read a change of the CLI's
      } catch (e) {
        this.log(`could not record key use in the vault: ${errorMessage(e)}`);
      }
    });
  }

  /** The data of a section of the open vault (format.ts), or undefined. */
  section(name: string): Buffer | undefined {
    return this.open?.section(name);
  }

  /**
   * Write a section into the open vault, or with null remove it (nothing
   * when the vault is not open). A
   * change the CLI wrote meanwhile is read first, and served, so neither
   * write undoes the other.
   */
  saveSection(name: string, data: Buffer | null): void {
    const open = this.open;
    if (!open || (data === null && open.section(name) === undefined)) return;
    try {
      if (!open.isCurrent()) {
        this.reload();
        if (this.open !== open) return; // it could not be re-read: forgotten
      }
      const reloads = open.reloads;
      open.setSection(name, data);
      if (open.reloads !== reloads) this.changed(open); // it read a change of the CLI's
    } catch (e) {
      this.log(`could not write ${name} into the vault: ${errorMessage(e)}`);
    }
  }

  private async identities(list: readonly VaultIdentity[]): Promise<NewIdentity[]> {
    const known = list.some((i) => i.allow?.length) ? this.knownHosts.get() : [];
    const out: NewIdentity[] = [];
    const now = Date.now();
    for (const vi of list) {
      try {
        const id = vi.publicBlob.toString('base64');
        const since = this.servedSince.get(id) ?? now;
        const life = vi.lifetime ?? (this.defaultLifetime || undefined); // -t 0: none
        const left = life === undefined ? undefined : (since + life * 1000 - now) / 1000;
        if (left !== undefined && left <= 0) {
          this.log(
            `vault key "${vi.comment}" not loaded: its lifetime is over until the next unlock`,
          );
          continue;
        }
        this.servedSince.set(id, since);
        const key = await this.agentKey(vi);
        const destinations = vi.allow?.length
          ? destinationsFromSpecs(vi.allow, (h) =>
              keysForHost(known, h).map((k) => ({ key: k.keyBlob, isCA: k.isCA })),
            )
          : undefined;
        out.push({
          key,
          comment: Buffer.from(vi.comment),
          constraints: {
            lifetime: left,
            confirm: vi.confirm,
            extensions: [],
            destinations,
            localOnly: vi.localOnly === true || undefined,
          },
          confirmForwarded: vi.confirmForwarded === true,
          confirmWindow: vi.confirmWindow,
        });
      } catch (e) {
        this.log(`vault key "${vi.comment}" not loaded: ${errorMessage(e)}`);
      }
    }
    return out;
  }

  private async agentKey(vi: VaultIdentity): Promise<NewIdentity['key']> {
    const r = new WireReader(vi.privateFields);
    if (!isSkKeyType(vi.keyType)) return readPrivateKey(r, vi.keyType);
    const sk = readSkPrivateKey(vi.keyType, r);
    r.end();
    if (!this.securityKey) throw new Error('security keys cannot be served here');
    const dev = await this.securityKey(sk, vi.skProvider ?? 'internal');
    if (!dev.ok) throw new Error(dev.reason);
    return dev.value;
  }

  /** Follow changes the CLI makes (rename-over writes), while the vault is open. */
  private watch(): void {
    const dir = path.dirname(this.vaultPath);
    const base = path.basename(this.vaultPath);
    let timer: NodeJS.Timeout | null = null;
    try {
      this.watcher = fs.watch(dir, (_event, name) => {
        if (name !== base || timer) return;
        // Let the writer finish its rename before reading.
        timer = setTimeout(() => {
          timer = null;
          this.reload();
        }, 50);
      });
      this.watcher.on('error', () => undefined);
    } catch (e) {
      this.log(`cannot watch ${dir}: ${errorMessage(e)}`);
    }
    // A host added to known_hosts (its first connection) makes --allow hops naming it usable.
    let khTimer: NodeJS.Timeout | null = null;
    try {
      this.knownHostsWatcher = fs.watch(path.join(os.homedir(), '.ssh'), (_event, name) => {
        if (name !== 'known_hosts' || khTimer) return;
        khTimer = setTimeout(() => {
          khTimer = null;
          // Events come for any write in ~/.ssh; only a changed known_hosts matters.
          if (!this.knownHosts.changed()) return;
          const open = this.open;
          if (open?.identities.some((i) => i.allow?.length)) this.changed(open);
        }, 50);
        khTimer.unref();
      });
      this.knownHostsWatcher.on('error', () => undefined);
    } catch {
      // No ~/.ssh yet: nothing to follow.
    }
  }

  /** Hand the current identities to onChange, unless a later change (or a lock) overtook them. */
  private changed(open: UnlockedVault): void {
    const seq = ++this.changes;
    void this.identities(open.identities).then((ids) => {
      if (this.open === open && seq === this.changes) this.onChange(ids);
    });
  }

  private reload(): void {
    if (!this.open) return;
    // Our own writes (last-use times) change nothing the keyring serves.
    if (this.open.isCurrent()) return;
    try {
      const open = this.open;
      open.reload();
      this.changed(open);
    } catch (e) {
      // The passphrase changed, or the file went away: forget the vault until unlocked again.
      this.log(`vault ${this.vaultPath} changed and cannot be re-read: ${errorMessage(e)}`);
      this.forget();
      this.onChange([]);
    }
  }
}
