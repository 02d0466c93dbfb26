// The learned host → key order (issue 13) kept in the vault while it is open,
// encrypted like the keys: read back at unlock, written a moment after it
// changes (never before the reply to the signature that taught it), written
// before the vault locks or the agent exits, and dropped from memory while the
// vault is locked. Without an open vault it lives in memory for the agent's life.

import type { HostKeyOrder } from '../agent/host-order';
import type { VaultBridge } from './vault-bridge';

/** The vault section (vault/format.ts) that holds HostKeyOrder.toBytes(). */
export const HOST_ORDER_SECTION = 'host-order';
/** Changes in a burst of logins are written together. */
const WRITE_DELAY_MS = 1000;

export class VaultHostOrder {
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;

  constructor(
    private readonly order: HostKeyOrder,
    private readonly vault: VaultBridge | undefined,
    private readonly log: (msg: string) => void,
  ) {}

  /**
   * HostKeyOrder's onChange: write soon, if there is an open vault to write to.
   * A last-seen time alone waits for the next write (or the lock, or the exit):
   * every login rewriting the vault would make a `tsagent vault` command that
   * is waiting for its passphrase fail with "changed meanwhile".
   */
  changed(significant = true): void {
    this.dirty = true;
    if (!significant || !this.vault?.loaded || this.timer) return;
    this.timer = setTimeout(() => this.flush(), WRITE_DELAY_MS);
    this.timer.unref();
  }

  /** Write what changed now (before a lock or exit). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.dirty || !this.vault?.loaded) return;
    this.dirty = false;
    // Nothing learned: no section, so the vault is again what tsagent wrote
    // before sections (older versions read it; `tsagent hosts forget --all`).
    const empty = this.order.entries().length === 0;
    this.vault.saveSection(HOST_ORDER_SECTION, empty ? null : this.order.toBytes());
  }

  /** The vault was opened: what it holds replaces memory (kept, and written, if it holds none). */
  unlocked(): void {
    const stored = this.vault?.section(HOST_ORDER_SECTION);
    if (stored === undefined) {
      if (this.order.entries().length > 0) this.changed();
      return;
    }
    this.dirty = false;
    if (!this.order.restore(stored))
      this.log(`the learned host order in the vault does not read back: starting afresh`);
  }

  /** The vault is about to lock: write, then forget what only the vault should hold. */
  locking(): void {
    if (!this.vault?.loaded) return;
    this.flush();
    this.order.restore(null);
  }
}
