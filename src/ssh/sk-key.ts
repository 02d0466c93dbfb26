// Security-key (FIDO/U2F) keys as the agent protocol carries them
// (PROTOCOL.u2f "SSH Private Keys"; OpenSSH sshkey_private_serialize_opt):
// the public part, the application ("ssh:..."), a flags byte, the key handle
// the authenticator gave out, and a reserved string. The "private" part is
// only a handle: signing needs the device, through ssh-sk-helper.
//
// The certificate forms differ between the two types, as OpenSSH 9.2 writes
// them: an ed25519-sk certificate repeats the public key after the cert blob
// (ssh_ed25519_sk_serialize_private), an ecdsa-sk certificate does not
// (ssh_ecdsa_sk_serialize_private skips it for certs).

import crypto = require('node:crypto');
import { WireError, WireReader, WireWriter } from './wire';

export const SK_ED25519 = 'sk-ssh-ed25519@openssh.com';
export const SK_ECDSA = 'sk-ecdsa-sha2-nistp256@openssh.com';
export const SK_ED25519_CERT = 'sk-ssh-ed25519-cert-v01@openssh.com';
export const SK_ECDSA_CERT = 'sk-ecdsa-sha2-nistp256-cert-v01@openssh.com';

/** sk-api.h: what the authenticator must check before it signs. */
export const SK_USER_PRESENCE_REQD = 0x01;
export const SK_USER_VERIFICATION_REQD = 0x04;
export const SK_RESIDENT_KEY = 0x20;

/** The constraint extension ssh-add attaches (authfd.c encode_constraints). */
export const SK_PROVIDER_EXTENSION = 'sk-provider@openssh.com';
const SSH_AGENT_CONSTRAIN_EXTENSION = 255;

const CERT_TO_PLAIN: Record<string, string> = {
  [SK_ED25519_CERT]: SK_ED25519,
  [SK_ECDSA_CERT]: SK_ECDSA,
};

export function isSkKeyType(type: string): boolean {
  return type === SK_ED25519 || type === SK_ECDSA || type in CERT_TO_PLAIN;
}

/** The plain type of an sk key or certificate type. */
export function skPlainType(type: string): string {
  return CERT_TO_PLAIN[type] ?? type;
}

/** The public half of an sk key: what a signature is checked against. */
export interface SkPublicKey {
  /** SK_ED25519 or SK_ECDSA. */
  type: string;
  /** Ed25519: the 32-byte key; ECDSA: the uncompressed P-256 point (65 bytes). */
  publicKey: Buffer;
  application: string;
}

export interface SkPrivateKey extends SkPublicKey {
  /** The type as sent: plain, or the certificate type. */
  keyType: string;
  /** The certificate blob, for the certificate types. */
  certificate?: Buffer;
  flags: number;
  keyHandle: Buffer;
  reserved: Buffer;
}

function checkPoint(type: string, pk: Buffer): void {
  if (type === SK_ED25519) {
    if (pk.length !== 32) throw new WireError('bad sk-ed25519 public key length');
    return;
  }
  if (pk.length !== 65 || pk[0] !== 4) throw new WireError('bad sk-ecdsa public point');
  try {
    skPublicKeyObject({ type, publicKey: pk, application: '' });
  } catch {
    throw new WireError('sk-ecdsa public point is not on P-256');
  }
}

/** Reads the public fields after the type name (PROTOCOL.u2f "SSH U2F public keys"). */
function readPublicFields(type: string, r: WireReader): { publicKey: Buffer; application: string } {
  if (type === SK_ECDSA && r.text() !== 'nistp256')
    throw new WireError('sk-ecdsa curve must be nistp256');
  const publicKey = Buffer.from(r.string());
  checkPoint(type, publicKey);
  return { publicKey, application: r.text() };
}

function writePublicFields(w: WireWriter, key: SkPublicKey): void {
  if (key.type === SK_ECDSA) w.string('nistp256');
  w.string(key.publicKey);
}

/** The SSH public key blob of a plain sk key. */
export function skPublicBlob(key: SkPublicKey): Buffer {
  const w = new WireWriter().string(key.type);
  writePublicFields(w, key);
  return w.string(key.application).toBuffer();
}

/** Parses a plain sk public key blob (as in a .pub file or IDENTITIES_ANSWER). */
export function parseSkPublicBlob(blob: Buffer): SkPublicKey {
  const r = new WireReader(blob);
  const type = r.text();
  if (type !== SK_ED25519 && type !== SK_ECDSA) throw new WireError(`not an sk key: ${type}`);
  const fields = readPublicFields(type, r);
  r.end();
  return { type, ...fields };
}

/** The public key inside an sk certificate blob (PROTOCOL.certkeys: type, nonce, key fields). */
export function skCertificateKey(cert: Buffer): SkPublicKey {
  const r = new WireReader(cert);
  const certType = r.text();
  const type = CERT_TO_PLAIN[certType];
  if (!type) throw new WireError(`not an sk certificate: ${certType}`);
  r.string(); // nonce
  return { type, ...readPublicFields(type, r) };
}

/**
 * The key fields of ADD_IDENTITY after the key type name `keyType` (already
 * read by the caller, which goes on to read the comment and constraints).
 */
export function readSkPrivateKey(keyType: string, r: WireReader): SkPrivateKey {
  const type = skPlainType(keyType);
  if (!isSkKeyType(keyType)) throw new WireError(`not an sk key type: ${keyType}`);
  let pub: SkPublicKey;
  let certificate: Buffer | undefined;
  if (keyType === type) {
    pub = { type, ...readPublicFields(type, r) };
  } else {
    certificate = Buffer.from(r.string());
    const inCert = skCertificateKey(certificate);
    if (type === SK_ED25519 && !Buffer.from(r.string()).equals(inCert.publicKey))
      throw new WireError('sk key does not match its certificate');
    pub = inCert;
  }
  const application = keyType === type ? pub.application : r.text();
  if (application !== pub.application)
    throw new WireError('sk application does not match certificate');
  const flags = r.byte();
  const keyHandle = Buffer.from(r.string());
  const reserved = Buffer.from(r.string());
  if (keyHandle.length === 0) throw new WireError('empty sk key handle');
  return { ...pub, keyType, certificate, flags, keyHandle, reserved };
}

/** The inverse of readSkPrivateKey, type name included (sshkey_private_serialize). */
export function writeSkPrivateKey(w: WireWriter, key: SkPrivateKey): WireWriter {
  w.string(key.keyType);
  if (key.certificate) {
    w.string(key.certificate);
    if (key.type === SK_ED25519) w.string(key.publicKey);
  } else {
    writePublicFields(w, key);
  }
  return w.string(key.application).byte(key.flags).string(key.keyHandle).string(key.reserved);
}

/** The key as ssh-sk-helper wants it: sshkey_private_serialize's bytes. */
export function encodeSkPrivateKey(key: SkPrivateKey): Buffer {
  return writeSkPrivateKey(new WireWriter(), key).toBuffer();
}

/** The public blob the agent lists for this key: the certificate, or the plain key. */
export function skKeyBlob(key: SkPrivateKey): Buffer {
  return key.certificate ?? skPublicBlob(key);
}

/** The constraint ssh-add appends: SSH_AGENT_CONSTRAIN_EXTENSION, name, provider path. */
export function encodeSkProviderConstraint(provider: string): Buffer {
  return new WireWriter()
    .byte(SSH_AGENT_CONSTRAIN_EXTENSION)
    .string(SK_PROVIDER_EXTENSION)
    .string(provider)
    .toBuffer();
}

/** The body of the sk-provider extension (after its name): the provider path. */
export function readSkProviderExtension(r: WireReader): string {
  const provider = r.text();
  if (provider.length === 0 || provider.includes('\0')) throw new WireError('bad sk provider name');
  return provider;
}

/** A Node public key for signature checks. */
export function skPublicKeyObject(key: SkPublicKey): crypto.KeyObject {
  if (key.type === SK_ED25519)
    return crypto.createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: key.publicKey.toString('base64url') },
      format: 'jwk',
    });
  const x = key.publicKey.subarray(1, 33).toString('base64url');
  const y = key.publicKey.subarray(33).toString('base64url');
  return crypto.createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
}
