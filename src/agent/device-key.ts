// Keys whose private half stays on a device: FIDO security keys (signed
// through ssh-sk-helper, one process per signature) and PKCS#11 token keys
// (signed through the provider's ssh-pkcs11-helper). To the keyring they are
// identities like any other: a public blob, and a way to sign.

import { SK_USER_PRESENCE_REQD, SkPrivateKey, skKeyBlob } from '../ssh/sk-key';
import { WireReader } from '../ssh/wire';
import { HelperFailure } from './helper-process';
import { Pkcs11Provider } from './pkcs11-helper';
import { SkSignOptions, skSign } from './sk-helper';

export interface DeviceKey {
  readonly algorithm: 'device';
  readonly device: 'security-key' | 'pkcs11';
  /** The wire name of the identity (plain or certificate type). */
  readonly keyType: string;
  /** The public key blob, or the certificate blob for certificates. */
  readonly publicBlob: Buffer;
  readonly bits: number;
  /** The canonical path of the middleware or PKCS#11 module ("internal" for the built-in one). */
  readonly provider: string;
  /** The device wants a touch for every signature (sk-api.h SSH_SK_USER_PRESENCE_REQD). */
  readonly needsTouch: boolean;
  /** Resolves to the SSH signature blob; rejects with a DeviceSignError. */
  sign(data: Buffer, flags: number): Promise<Buffer>;
}

/** A signature the device or its helper did not make. */
export class DeviceSignError extends Error {
  constructor(readonly failure: HelperFailure) {
    super(failure.message);
  }
}

/** A security key that signs through ssh-sk-helper with `provider`. */
export function securityKey(
  key: SkPrivateKey,
  provider: string,
  opts: SkSignOptions = {},
): DeviceKey {
  return {
    algorithm: 'device',
    device: 'security-key',
    keyType: key.keyType,
    publicBlob: skKeyBlob(key),
    bits: 256,
    provider,
    needsTouch: (key.flags & SK_USER_PRESENCE_REQD) !== 0,
    // sk keys have no signature flags: ssh-agent passes none to sshkey_sign.
    sign: async (data) => {
      const res = await skSign(key, provider, data, opts);
      if (!res.ok) throw new DeviceSignError(res.error);
      return res.value;
    },
  };
}

/** The bits of an RSA or ECDSA public key blob (for listings). */
function blobBits(blob: Buffer): number {
  const r = new WireReader(blob);
  const type = r.text();
  if (type === 'ssh-rsa') {
    r.mpint();
    const n = r.mpint();
    return n.length === 0 ? 0 : (n.length - 1) * 8 + n[0].toString(2).length;
  }
  return (
    { 'ecdsa-sha2-nistp256': 256, 'ecdsa-sha2-nistp384': 384, 'ecdsa-sha2-nistp521': 521 }[type] ??
    0
  );
}

/**
 * A key of a loaded PKCS#11 token. With `certificate`, the identity is that
 * certificate grafted onto the token key (OpenSSH 9.6 associated-certs): it
 * is listed as the certificate and signs with the token key.
 */
export function tokenKey(
  provider: Pkcs11Provider,
  blob: Buffer,
  certificate?: { keyType: string; blob: Buffer },
): DeviceKey {
  return {
    algorithm: 'device',
    device: 'pkcs11',
    keyType: certificate?.keyType ?? new WireReader(blob).text(),
    publicBlob: certificate?.blob ?? blob,
    bits: blobBits(blob),
    provider: provider.provider,
    needsTouch: false,
    sign: async (data, flags) => {
      const res = await provider.sign(blob, data, flags);
      if (!res.ok) throw new DeviceSignError(res.error);
      return res.value;
    },
  };
}
