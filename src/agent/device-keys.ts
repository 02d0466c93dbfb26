// The agent's policy for keys that live on devices, between a request and
// the keyring: which providers may be named (the -P allow-list, on the
// provider's realpath), that a forwarded connection may not name one (OpenSSH
// 9.4, unless -O allow-remote-pkcs11), and the loaded PKCS#11 tokens with the
// identities each brought (ssh-agent.c process_add_identity's sk-provider
// checks, process_add_smartcard_key, process_remove_smartcard_key).

import fs = require('node:fs');
import { readCertificate } from '../ssh/certificate';
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';
import { baseKeyType, encodePublicBlob, isCertificateType } from '../ssh/publickey';
import { SkPrivateKey } from '../ssh/sk-key';
import { WireReader } from '../ssh/wire';
import type { AssociatedCerts } from './constraints';
import type { DeviceKey } from './device-key';
import type { Pkcs11Options, Pkcs11Provider } from './pkcs11-helper';
import type { Pkcs11Providers } from './pkcs11-providers';
import { ProviderAllowList } from './provider-allowlist';
import type { SkSignOptions } from './sk-helper';

export interface DeviceKeysOptions {
  allowList?: ProviderAllowList;
  /** -O allow-remote-pkcs11: forwarded connections may name providers too. */
  allowRemoteProviders?: boolean;
  /** Off with -O no-restrict-websafe (see websafe.ts). */
  restrictWebsafe?: boolean;
  sk?: SkSignOptions;
  /** Tell the user to touch a security key (see SecurityKeyOptions.onTouch). */
  onTouch?: (key: DeviceKey) => () => void;
  pkcs11?: Pkcs11Options;
  /** A token's helper died: these identities can no longer sign. */
  onTokenGone?: (blobs: Buffer[]) => void;
}

/**
 * The helpers' modules (ssh-sk-helper, ssh-pkcs11-helper, their protocols)
 * load with the first device key: most agents never have one, and an idle
 * agent's heap holds the source and code of every module it loaded.
 */
const deviceKey = () => require('./device-key') as typeof import('./device-key');

export type DeviceResult<T> = { ok: true; value: T } | { ok: false; reason: string };

const refuse = (reason: string): DeviceResult<never> => ({ ok: false, reason });

/** An identity a token brought: the key (or a certificate grafted on it) and its comment. */
export interface TokenIdentity {
  key: DeviceKey;
  comment: Buffer;
}

export class DeviceKeys {
  private readonly allowList: ProviderAllowList;
  /** The loaded PKCS#11 providers: made with the first token. */
  private providers: Pkcs11Providers | null = null;
  /** The identities each loaded token brought, by canonical provider path. */
  private readonly tokenBlobs = new Map<string, Buffer[]>();

  constructor(private readonly opts: DeviceKeysOptions = {}) {
    this.allowList = opts.allowList ?? new ProviderAllowList();
  }

  private loadedProviders(): Pkcs11Providers {
    if (!this.providers) {
      const { Pkcs11Providers } =
        require('./pkcs11-providers') as typeof import('./pkcs11-providers');
      this.providers = new Pkcs11Providers({
        helper: this.opts.pkcs11,
        onGone: (canonical) => {
          const blobs = this.tokenBlobs.get(canonical) ?? [];
          this.tokenBlobs.delete(canonical);
          this.opts.onTokenGone?.(blobs);
        },
      });
    }
    return this.providers;
  }

  /** The realpath of a provider a client named, if it may be loaded. */
  private async allowed(provider: string, remote: boolean): Promise<DeviceResult<string>> {
    if (remote && !this.opts.allowRemoteProviders)
      return refuse(
        `provider "${escapeText(provider)}" named over a forwarded connection: remote addition of providers is disabled (-O allow-remote-pkcs11)`,
      );
    const check = await this.allowList.check(provider);
    return check.ok ? { ok: true, value: check.path } : refuse(check.message);
  }

  /**
   * A security key added with the sk-provider constraint `provider`
   * ("internal" is OpenSSH's built-in middleware: no path to check).
   */
  async securityKey(
    key: SkPrivateKey,
    provider: string | undefined,
    remote: boolean,
  ): Promise<DeviceResult<DeviceKey>> {
    if (provider === undefined)
      return refuse('security key added without an sk-provider constraint');
    let canonical = provider;
    if (provider.toLowerCase() !== 'internal') {
      const ok = await this.allowed(provider, remote);
      if (!ok.ok) return ok;
      canonical = ok.value;
    }
    const { sk, restrictWebsafe, onTouch } = this.opts;
    const value = deviceKey().securityKey(key, canonical, { sk, restrictWebsafe, onTouch });
    return { ok: true, value };
  }

  /** ADD_SMARTCARD_KEY(_CONSTRAINED): load the token; its identities (with certificates grafted on). */
  async addToken(
    provider: string,
    pin: Buffer,
    certs: AssociatedCerts | undefined,
    remote: boolean,
  ): Promise<DeviceResult<TokenIdentity[]>> {
    const ok = await this.allowed(provider, remote);
    if (!ok.ok) {
      pin.fill(0);
      return ok;
    }
    const canonical = ok.value;
    const loaded = await this.loadedProviders().load(canonical, pin);
    if (!loaded.ok) return refuse(loaded.message);
    const p = loaded.provider;
    const ids = tokenIdentities(p, certs);
    if (typeof ids === 'string' || ids.length === 0) {
      await this.loadedProviders().unload(canonical);
      return refuse(typeof ids === 'string' ? ids : `no usable keys on "${escapeText(canonical)}"`);
    }
    this.tokenBlobs.set(
      canonical,
      ids.map((i) => i.key.publicBlob),
    );
    return { ok: true, value: ids };
  }

  /** REMOVE_SMARTCARD_KEY: unload the token; the identities it brought, to remove. */
  async removeToken(provider: string): Promise<DeviceResult<Buffer[]>> {
    // process_remove_smartcard_key: realpath, but no allow-list (unloading is always safe).
    let canonical: string;
    try {
      canonical = await fs.promises.realpath(provider);
    } catch (e) {
      return refuse(`provider "${escapeText(provider)}": realpath: ${escapeText(errorMessage(e))}`);
    }
    const blobs = this.tokenBlobs.get(canonical) ?? [];
    this.tokenBlobs.delete(canonical);
    if (!(await this.providers?.unload(canonical)))
      return refuse(`PKCS#11 provider "${escapeText(canonical)}" is not loaded`);
    return { ok: true, value: blobs };
  }

  /** Unload every token (ssh-add -D, shutdown): the identities they brought. */
  async removeAllTokens(): Promise<Buffer[]> {
    const blobs = [...this.tokenBlobs.values()].flat();
    this.tokenBlobs.clear();
    await this.providers?.unloadAll();
    return blobs;
  }
}

/**
 * A token's identities: its keys (unless certs_only) and each associated
 * certificate whose key is on the token (PROTOCOL.agent associated-certs).
 * Comments are the token's labels, else the provider path (ssh-agent.c).
 */
function tokenIdentities(
  p: Pkcs11Provider,
  certs: AssociatedCerts | undefined,
): TokenIdentity[] | string {
  const { tokenKey } = deviceKey();
  const out: TokenIdentity[] = [];
  const comment = (label: string) => Buffer.from(label || p.provider, 'utf8');
  if (!certs?.certsOnly)
    for (const k of p.keys) out.push({ key: tokenKey(p, k.blob), comment: comment(k.label) });
  for (const cert of certs?.certs ?? []) {
    let certType: string;
    let plain: Buffer;
    try {
      certType = new WireReader(cert).text();
      if (!isCertificateType(certType)) return 'an associated certificate is not a certificate';
      plain = encodePublicBlob(baseKeyType(certType), readCertificate(cert, certType).parts);
    } catch {
      return 'malformed associated certificate';
    }
    const k = p.keys.find((key) => key.blob.equals(plain));
    if (k)
      out.push({
        key: tokenKey(p, k.blob, { keyType: certType, blob: cert }),
        comment: comment(k.label),
      });
  }
  return out;
}
