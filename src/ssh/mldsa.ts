// ssh-mldsa44-ed25519@openssh.com (OpenSSH 10.5; draft-miller-sshm-mldsa44-
// ed25519-composite-sigs, on the composite signatures of draft-ietf-lamps-pq-
// composite-sigs): ML-DSA-44 (FIPS 204) and Ed25519 side by side.
//   public key:  pk = ML-DSA-44 public key (1312) || Ed25519 public key (32)
//   private key: sk = ML-DSA-44 seed ξ (32) || Ed25519 seed (32)
//   signature:   ML-DSA-44 signature (2420) || Ed25519 signature (64), both over
//                M' = Prefix || Label || len(ctx)=0 || SHA-512(message), the
//                ML-DSA one with the Label as its FIPS 204 context.
// ML-DSA is @noble/post-quantum's (loaded on first use); Ed25519 is Node's.
// The facts were checked against OpenSSH 10.5's own files (test/mldsa44-*.test.ts).

import crypto = require('node:crypto');

export const MLDSA_KEY_TYPE = 'ssh-mldsa44-ed25519@openssh.com';
export const MLDSA_PUBLIC_LENGTH = 1312;
export const ED25519_PUBLIC_LENGTH = 32;
export const COMPOSITE_PUBLIC_LENGTH = MLDSA_PUBLIC_LENGTH + ED25519_PUBLIC_LENGTH;
export const COMPOSITE_SECRET_LENGTH = 64;
export const MLDSA_SIGNATURE_LENGTH = 2420;
export const COMPOSITE_SIGNATURE_LENGTH = MLDSA_SIGNATURE_LENGTH + 64;

const PREFIX = Buffer.from('CompositeAlgorithmSignatures2025');
export const COMPOSITE_LABEL = Buffer.from('COMPSIG-MLDSA44-Ed25519-SHA512');

type MlDsa = (typeof import('@noble/post-quantum/ml-dsa.js'))['ml_dsa44'];
let mlDsa: MlDsa | undefined;

/** noble's ML-DSA-44, loaded when first needed (an ES module, required from CommonJS). */
export function mlDsa44(): MlDsa {
  mlDsa ??= (
    require('@noble/post-quantum/ml-dsa.js') as typeof import('@noble/post-quantum/ml-dsa.js')
  ).ml_dsa44;
  return mlDsa;
}

/** M' of the composite scheme: what both halves sign. */
export function compositeMessage(data: Buffer): Buffer {
  const digest = crypto.createHash('sha512').update(data).digest();
  return Buffer.concat([PREFIX, COMPOSITE_LABEL, Buffer.of(0), digest]);
}

/** RFC 8410 SubjectPublicKeyInfo of an Ed25519 public key. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function ed25519PublicKey(pk: Buffer): crypto.KeyObject {
  return crypto.createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, pk]),
    format: 'der',
    type: 'spki',
  });
}

/** Verify a composite signature body (2484 bytes) over `data` with a composite public key. */
export function verifyComposite(pk: Buffer, data: Buffer, sig: Buffer): boolean {
  if (pk.length !== COMPOSITE_PUBLIC_LENGTH || sig.length !== COMPOSITE_SIGNATURE_LENGTH)
    return false;
  const m = compositeMessage(data);
  const edOk = crypto.verify(
    null,
    m,
    ed25519PublicKey(pk.subarray(MLDSA_PUBLIC_LENGTH)),
    sig.subarray(MLDSA_SIGNATURE_LENGTH),
  );
  if (!edOk) return false;
  return mlDsa44().verify(
    sig.subarray(0, MLDSA_SIGNATURE_LENGTH),
    m,
    pk.subarray(0, MLDSA_PUBLIC_LENGTH),
    { context: COMPOSITE_LABEL },
  );
}

/**
 * The ML-DSA-44 half of a composite signature (randomized, as OpenSSH's). Takes
 * milliseconds: the agent runs it in a worker thread (agent/sign-worker.ts).
 */
export function signMlDsa(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
  return mlDsa44().sign(message, secretKey, { context: COMPOSITE_LABEL });
}

/** The expanded ML-DSA-44 key pair of a seed ξ (FIPS 204 ML-DSA.KeyGen_internal). */
export function mlDsaKeyPair(seed: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array } {
  return mlDsa44().keygen(seed);
}
