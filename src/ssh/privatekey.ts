// SSH private keys as the agent protocol carries them (draft-miller-ssh-agent
// §4.2.3, after the key type): the one parser of these fields, used by the
// agent's ADD_IDENTITY and by the vault's stored keys.
//   ssh-ed25519:          string pk(32), string sk(64 = seed || pk)
//   ecdsa-sha2-nistpNNN:  string curve, string Q (0x04 || X || Y), mpint d
//   ssh-rsa:              mpint n, mpint e, mpint d, mpint iqmp, mpint p, mpint q
//   ssh-dss:              mpint p, mpint q, mpint g, mpint y, mpint x
//   ssh-mldsa44-ed25519@openssh.com: string pk(1344), string sk(64 = ML-DSA seed || Ed25519 seed)
//     (its certificate form has no pk: string certificate, string sk, as OpenSSH 10.5 sends it)
//   *-cert-v01@openssh.com: string certificate, then the private half only.

import type { KeyObject } from 'node:crypto';
import { Curve } from './curves';
import { readCertificate } from './certificate';
import { dsaKey, ecdsaKey, ed25519Key, mlDsaEd25519Key, rsaKey } from './keyobject';
import {
  PublicParts,
  baseKeyType,
  encodePublicBlob,
  isCertificateType,
  publicBits,
  readPublicParts,
} from './publickey';
import { WireError, WireReader } from './wire';

interface KeyCommon {
  /** The wire name of the identity (e.g. `ssh-ed25519-cert-v01@openssh.com`). */
  readonly keyType: string;
  /** The public key blob, or the certificate blob for certificates. */
  readonly publicBlob: Buffer;
  readonly keyObject: KeyObject;
  readonly bits: number;
}

/** A private key the agent can sign with. The public blob is what clients name it by. */
export type PrivateKey =
  | (KeyCommon & { readonly algorithm: 'ed25519' })
  | (KeyCommon & { readonly algorithm: 'ecdsa'; readonly curve: Curve })
  | (KeyCommon & { readonly algorithm: 'rsa' })
  | (KeyCommon & { readonly algorithm: 'dsa' })
  /** keyObject is the Ed25519 half; the ML-DSA-44 half is signed with by noble. */
  | (KeyCommon & { readonly algorithm: 'mldsa44-ed25519'; readonly mlDsaSecret: Uint8Array });

/** In ADD_IDENTITY, RSA's public fields come as n, e (not e, n as in the public blob). */
function readPublicPartsForAdd(r: WireReader, base: string): PublicParts {
  if (base !== 'ssh-rsa') return readPublicParts(r, base);
  const n = r.mpint();
  const e = r.mpint();
  return { algorithm: 'rsa', e, n };
}

/**
 * Read the private-key fields of a key of `keyType` and build a PrivateKey.
 * Throws WireError if the fields are malformed or the private and public
 * halves do not belong together.
 */
export function readPrivateKey(r: WireReader, keyType: string): PrivateKey {
  const isCert = isCertificateType(keyType);
  let pub: PublicParts;
  let publicBlob: Buffer;
  if (isCert) {
    publicBlob = Buffer.from(r.string());
    pub = readCertificate(publicBlob, keyType).parts;
  } else {
    pub = readPublicPartsForAdd(r, baseKeyType(keyType));
    publicBlob = encodePublicBlob(keyType, pub);
  }
  const bits = publicBits(pub);
  const common = { keyType, publicBlob, bits };
  if (pub.algorithm === 'ed25519') {
    if (isCert) {
      const pk = r.string();
      if (!pk.equals(pub.pk)) throw new WireError('ed25519 key does not match certificate');
    }
    return { ...common, algorithm: 'ed25519', keyObject: ed25519Key(pub.pk, r.string()) };
  }
  if (pub.algorithm === 'ecdsa') {
    const keyObject = ecdsaKey(pub.curve, pub.q, r.mpint());
    return { ...common, algorithm: 'ecdsa', curve: pub.curve, keyObject };
  }
  if (pub.algorithm === 'mldsa44-ed25519') {
    const { keyObject, mlDsaSecret } = mlDsaEd25519Key(pub.pk, r.string());
    return { ...common, algorithm: 'mldsa44-ed25519', keyObject, mlDsaSecret };
  }
  if (pub.algorithm === 'dsa')
    return { ...common, algorithm: 'dsa', keyObject: dsaKey(pub, r.mpint()) };
  const d = r.mpint();
  r.mpint(); // iqmp: recomputed from p and q rather than trusted
  const p = r.mpint();
  const q = r.mpint();
  return { ...common, algorithm: 'rsa', keyObject: rsaKey(pub.e, pub.n, d, p, q) };
}
