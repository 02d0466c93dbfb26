// The PKCS#11 providers the agent has loaded, by canonical path, each in its
// own ssh-pkcs11-helper (ssh-agent.c process_add_smartcard_key /
// process_remove_smartcard_key). The keyring holds the keys; this holds the
// helpers, and says when one has gone so that its keys can be dropped
// (OpenSSH only notices at the next failed signature).

import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';
import { Pkcs11Options, Pkcs11Provider } from './pkcs11-helper';

export type ProviderLoad =
  { ok: true; provider: Pkcs11Provider } | { ok: false; message: string; wrongPin?: boolean };

export interface Pkcs11ProvidersOptions {
  helper?: Pkcs11Options;
  /** Called once when a loaded provider's helper exits unasked (died, killed). */
  onGone?: (canonical: string, provider: Pkcs11Provider) => void;
}

export class Pkcs11Providers {
  private readonly loaded = new Map<string, Pkcs11Provider>();
  /** Loads in progress, so that two concurrent adds of one provider cannot both start. */
  private readonly loading = new Set<string>();
  private readonly unloading = new Set<Pkcs11Provider>();

  constructor(private readonly opts: Pkcs11ProvidersOptions) {}

  get(canonical: string): Pkcs11Provider | undefined {
    return this.loaded.get(canonical);
  }

  /** Loads `canonical` (a realpath the allow-list allowed) with `pin`, which is wiped. */
  async load(canonical: string, pin: Buffer): Promise<ProviderLoad> {
    if (this.loaded.has(canonical) || this.loading.has(canonical)) {
      pin.fill(0);
      // ssh-pkcs11.c pkcs11_register_provider: "provider already registered".
      return {
        ok: false,
        message: `PKCS#11 provider "${escapeText(canonical)}" is already loaded`,
      };
    }
    this.loading.add(canonical);
    try {
      const res = await Pkcs11Provider.load(canonical, pin, this.opts.helper);
      if (!res.ok)
        return {
          ok: false,
          message: `PKCS#11 add of "${escapeText(canonical)}" failed: ${res.error.message}`,
          wrongPin: res.error.kind === 'wrong-pin',
        };
      const p = res.value;
      this.loaded.set(canonical, p);
      void p.exited.then(() => {
        if (this.loaded.get(canonical) !== p) return;
        this.loaded.delete(canonical);
        if (!this.unloading.has(p)) this.opts.onGone?.(canonical, p);
      });
      return { ok: true, provider: p };
    } catch (e) {
      return {
        ok: false,
        message: `PKCS#11 add of "${escapeText(canonical)}" failed: ${escapeText(errorMessage(e))}`,
      };
    } finally {
      this.loading.delete(canonical);
    }
  }

  /** Unloads a provider; false if it was not loaded. */
  async unload(canonical: string): Promise<boolean> {
    const p = this.loaded.get(canonical);
    if (!p) return false;
    this.unloading.add(p);
    this.loaded.delete(canonical);
    try {
      await p.unload();
    } finally {
      this.unloading.delete(p);
    }
    return true;
  }

  /** Unloads every provider (agent shutdown). */
  async unloadAll(): Promise<void> {
    await Promise.all([...this.loaded.keys()].map((c) => this.unload(c)));
  }

  get size(): number {
    return this.loaded.size;
  }
}
