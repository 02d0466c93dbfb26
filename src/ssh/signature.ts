// SSH signature blobs: `string algorithm, string signature` (RFC 4253 §6.6),
// with the bodies of RFC 8332 (RSA), RFC 5656 §3.1.2 (ECDSA: mpint r, mpint s)
// and RFC 8709 (Ed25519); and their verification.

import crypto = require('node:crypto');
import { readCertificate, parseCertificate } from './certificate';
import { padTo, publicKeyObject } from './keyobject';
import { MLDSA_KEY_TYPE, verifyComposite } from './mldsa';
import { PublicParts, isCertificateType, readPublicParts } from './publickey';
import { WireError, WireReader, WireWriter } from './wire';

/**
 * The DER of an ECDSA signature, SEQUENCE { INTEGER r, INTEGER s }, as SSH's
 * `mpint r, mpint s`: DER integers are already minimal two's complement, i.e.
 * mpint bodies. (Asking OpenSSL for DER and converting is cheaper than P1363.)
 */
export function derToMpints(der: Buffer): Buffer {
  let off = 0;
  const len = (): number => {
    const first = der[off++];
    if (first < 0x80) return first;
    let n = 0;
    for (let i = 0; i < (first & 0x7f); i++) n = (n << 8) | der[off++];
    return n;
  };
  if (der[off++] !== 0x30) throw new Error('ECDSA signature is not a DER SEQUENCE');
  len();
  const w = new WireWriter();
  for (let i = 0; i < 2; i++) {
    if (der[off++] !== 0x02) throw new Error('ECDSA signature part is not a DER INTEGER');
    const n = len();
    w.string(der.subarray(off, off + n));
    off += n;
  }
  return w.toBuffer();
}

/**
 * The signature blob for a raw signature from crypto.sign: `ecdsa` signatures
 * come as DER (the default encoding) and become mpints; others go as they are.
 */
export function encodeSignature(name: string, raw: Buffer, derEcdsa: boolean): Buffer {
  return new WireWriter()
    .string(name)
    .string(derEcdsa ? derToMpints(raw) : raw)
    .toBuffer();
}

/** The hash each RSA signature algorithm uses (RFC 8332 §3; ssh-rsa is SHA-1). */
const RSA_HASHES: Record<string, string> = {
  'rsa-sha2-256': 'sha256',
  'rsa-sha2-512': 'sha512',
  'ssh-rsa': 'sha1',
};

/**
 * An mpint read as OpenSSH's sshbuf_get_bignum2 reads it inside signatures:
 * negative numbers refused, redundant leading zero bytes stripped rather than
 * refused (a real server's signature may carry them, and OpenSSH accepts it).
 */
function lenientMpint(r: WireReader): Buffer {
  const b = r.string();
  if (b.length > 0 && b[0] & 0x80) throw new WireError('negative mpint');
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}

/** Verify a signature body (already split from its name) with public parts. */
function verifyParts(pub: PublicParts, sigName: string, sig: Buffer, data: Buffer): boolean {
  if (pub.algorithm === 'ed25519') {
    if (sigName !== 'ssh-ed25519') return false;
    return crypto.verify(null, data, publicKeyObject(pub), sig);
  }
  if (pub.algorithm === 'ecdsa') {
    if (sigName !== pub.curve.keyType) return false;
    const rs = new WireReader(sig);
    const raw = Buffer.concat([
      padTo(lenientMpint(rs), pub.curve.size),
      padTo(lenientMpint(rs), pub.curve.size),
    ]);
    rs.end();
    const key = publicKeyObject(pub);
    return crypto.verify(pub.curve.hash, data, { key, dsaEncoding: 'ieee-p1363' }, raw);
  }
  if (pub.algorithm === 'mldsa44-ed25519')
    return sigName === MLDSA_KEY_TYPE && verifyComposite(pub.pk, data, sig);
  if (pub.algorithm === 'dsa') {
    // RFC 4253 §6.6: r || s, 20 bytes each, over SHA-1 (OpenSSH's ssh_dss_verify).
    if (sigName !== 'ssh-dss' || sig.length !== 40) return false;
    const key = publicKeyObject(pub);
    return crypto.verify('sha1', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  }
  const hash = RSA_HASHES[sigName];
  if (!hash) return false;
  // OpenSSH's ssh_rsa_verify left-pads a signature shorter than the modulus; OpenSSL
  // insists on the modulus length. Longer is refused by both.
  let n = 0;
  while (n < pub.n.length && pub.n[n] === 0) n++;
  const modulusLength = pub.n.length - n;
  if (sig.length > modulusLength) return false;
  return crypto.verify(hash, data, publicKeyObject(pub), padTo(sig, modulusLength));
}

/**
 * Verify an SSH signature blob over data with a public blob (used for
 * session-bind). A certificate's CA signature must hold too (not SHA-1 RSA,
 * as OpenSSH's SSH_ALLOWED_CA_SIGALGS), then the certified key signs.
 */
export function verifySignature(publicBlob: Buffer, data: Buffer, signatureBlob: Buffer): boolean {
  try {
    const r = new WireReader(publicBlob);
    const keyType = r.text();
    let pub: PublicParts;
    if (isCertificateType(keyType)) {
      const { cert, parts } = readCertificate(publicBlob, keyType);
      if (new WireReader(cert.signature).text() === 'ssh-rsa') return false;
      if (parseCertificate(cert.signatureKey) !== null) return false; // CAs are plain keys
      if (!verifySignature(cert.signatureKey, cert.signedData, cert.signature)) return false;
      pub = parts;
    } else {
      pub = readPublicParts(r, keyType);
      r.end();
    }
    const s = new WireReader(signatureBlob);
    const sigName = s.text();
    const sig = s.string();
    s.end();
    return verifyParts(pub, sigName, sig, data);
  } catch {
    return false;
  }
}
