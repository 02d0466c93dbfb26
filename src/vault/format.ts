// Vault file format v1. This comment is the specification (man/tsagent-vault.5
// should be written from it):
//
//   offset size
//        0    8  magic "TSAGENTV"
//        8    2  uint16 format version = 1
//       10    1  KDF id (1 = argon2id)
//       11    4  uint32 argon2 memory, KiB
//       15    4  uint32 argon2 time cost
//       19    1  uint8 argon2 parallelism
//       20    1  uint8 salt length (16)
//       21   16  salt
//       37    1  cipher id (1 = AES-256-GCM)
//       38   12  nonce, fresh random per write
//       50   16  key check value (HKDF of the argon2 output; see kdf.ts)
//       66    4  uint32 ciphertext length N
//       70    N  ciphertext  (AES-256-GCM, associated data = bytes 0..69, the whole header)
//     70+N   16  GCM tag
//     86+N   32  SHA-256 of bytes 0..85+N (unkeyed)
//
// How damage is told apart from a wrong passphrase:
// - The trailing SHA-256 catches any accidental change or truncation anywhere,
//   without the passphrase (so `verify` can say "damaged" before asking).
// - Someone who rewrites the file on purpose can recompute that digest. Then:
//   a changed salt, KDF parameter or key check value makes the derived key check
//   fail, which is indistinguishable from a wrong passphrase (a forger can always
//   make a vault with another passphrase, so nothing better is possible); any other
//   change (ids, nonce, length, ciphertext, tag) passes the key check but fails
//   GCM authentication and is reported as tampering. Nothing ever decrypts to
//   different content: GCM authenticates the header and the ciphertext.
//
// Sealed payload (plaintext), SSH wire encoding so secrets stay in Buffers
// that can be overwritten:
//   uint32 identity count
//   per identity: string keyType, string publicBlob, string privateFields,
//                 string metadata (UTF-8 JSON: comment, created, lastUsed?,
//                 confirm?, lifetime?, allow?, confirmForwarded?, localOnly?,
//                 confirmWindow?, skProvider? (security keys), plus unknown
//                 keys kept as-is)
//   sections, only when there are any (a vault without them is byte for byte
//   what tsagent wrote before sections existed):
//     uint32 section count (at most 64)
//     per section: string name ([a-z0-9][a-z0-9.@-]*, at most 64, unique),
//                  string data (opaque to the vault; "host-order" is the
//                  agent's learned host → key order, agent/host-order.ts)
//   zero padding up to a multiple of 4096 bytes (at least one byte), so the
//   file size does not reveal the number of keys of a small vault. Read
//   back, zero padding where the section count would be is a count of 0.
import crypto = require('node:crypto');
import {
  deriveVaultKey,
  DEFAULT_KDF,
  KdfParams,
  kdfParamsProblem,
  KEY_CHECK_LENGTH,
  SALT_LENGTH,
  VaultKey,
} from './kdf';
import { damaged, VaultError, WRONG_PASSPHRASE_MESSAGE } from './error';
import {
  decodeContents,
  encodePayload,
  VaultContents,
  VaultIdentity,
  VaultSection,
} from './payload';

export { DAMAGED_MESSAGE, VaultError, VaultErrorCode, WRONG_PASSPHRASE_MESSAGE } from './error';
export {
  decodeContents,
  decodePayload,
  encodePayload,
  PAD_BLOCK,
  VaultContents,
  VaultIdentity,
  VaultSection,
} from './payload';

export const MAGIC = Buffer.from('TSAGENTV', 'latin1');
export const FORMAT_VERSION = 1;
export const KDF_ARGON2ID = 1;
export const CIPHER_AES_256_GCM = 1;
export const NONCE_LENGTH = 12;
export const TAG_LENGTH = 16;
export const DIGEST_LENGTH = 32;
export const HEADER_LENGTH = 70;

/** The parsed, still encrypted file. */
export interface SealedVault {
  header: Buffer;
  version: number;
  kdf: KdfParams;
  salt: Buffer;
  nonce: Buffer;
  keyCheck: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** Structural checks that need no passphrase: magic, version, digest, lengths, ids, ranges. */
export function parseVault(bytes: Buffer): SealedVault {
  if (bytes.length < MAGIC.length || !bytes.subarray(0, MAGIC.length).equals(MAGIC))
    throw damaged('not a tsagent vault (the TSAGENTV magic is missing)');
  if (bytes.length < 10) throw damaged(`truncated: only ${bytes.length} bytes`);
  const version = bytes.readUInt16BE(8);
  if (version !== FORMAT_VERSION)
    throw new VaultError(
      'UNSUPPORTED',
      `unsupported vault format version ${version} (this tsagent reads version ${FORMAT_VERSION}): ` +
        'the file is damaged or was written by a newer tsagent',
    );
  const minimum = HEADER_LENGTH + TAG_LENGTH + DIGEST_LENGTH;
  if (bytes.length < minimum)
    throw damaged(`truncated: ${bytes.length} bytes, a vault has at least ${minimum}`);
  const body = bytes.subarray(0, bytes.length - DIGEST_LENGTH);
  const digest = crypto.createHash('sha256').update(body).digest();
  if (!crypto.timingSafeEqual(digest, bytes.subarray(bytes.length - DIGEST_LENGTH)))
    throw damaged('checksum mismatch (the file was changed or truncated)');

  const header = bytes.subarray(0, HEADER_LENGTH);
  if (header[10] !== KDF_ARGON2ID) throw damaged(`unknown KDF id ${header[10]}`);
  const kdf: KdfParams = {
    memoryKiB: header.readUInt32BE(11),
    time: header.readUInt32BE(15),
    parallelism: header[19],
  };
  const problem = kdfParamsProblem(kdf);
  if (problem) throw damaged(problem);
  if (header[20] !== SALT_LENGTH)
    throw damaged(`salt length ${header[20]}, expected ${SALT_LENGTH}`);
  if (header[37] !== CIPHER_AES_256_GCM) throw damaged(`unknown cipher id ${header[37]}`);
  const ctLength = header.readUInt32BE(66);
  if (ctLength !== body.length - HEADER_LENGTH - TAG_LENGTH)
    throw damaged(`ciphertext length ${ctLength} does not match the file size ${bytes.length}`);
  return {
    header,
    version,
    kdf,
    salt: header.subarray(21, 37),
    nonce: header.subarray(38, 50),
    keyCheck: header.subarray(50, 66),
    ciphertext: body.subarray(HEADER_LENGTH, HEADER_LENGTH + ctLength),
    tag: body.subarray(HEADER_LENGTH + ctLength),
  };
}

function buildHeader(key: VaultKey, nonce: Buffer, ctLength: number): Buffer {
  const h = Buffer.alloc(HEADER_LENGTH);
  MAGIC.copy(h, 0);
  h.writeUInt16BE(FORMAT_VERSION, 8);
  h[10] = KDF_ARGON2ID;
  h.writeUInt32BE(key.kdf.memoryKiB, 11);
  h.writeUInt32BE(key.kdf.time, 15);
  h[19] = key.kdf.parallelism;
  h[20] = SALT_LENGTH;
  key.salt.copy(h, 21);
  h[37] = CIPHER_AES_256_GCM;
  nonce.copy(h, 38);
  key.keyCheck.copy(h, 50);
  h.writeUInt32BE(ctLength, 66);
  return h;
}

/** Encrypt identities (and sections) under an already derived key, with a fresh nonce. */
export function sealVault(
  identities: readonly VaultIdentity[],
  key: VaultKey,
  sections: readonly VaultSection[] = [],
): Buffer {
  const plain = encodePayload(identities, sections);
  try {
    const nonce = crypto.randomBytes(NONCE_LENGTH);
    const header = buildHeader(key, nonce, plain.length);
    const cipher = crypto.createCipheriv('aes-256-gcm', key.encKey, nonce, {
      authTagLength: TAG_LENGTH,
    });
    cipher.setAAD(header);
    const body = Buffer.concat([header, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return Buffer.concat([body, crypto.createHash('sha256').update(body).digest()]);
  } finally {
    plain.fill(0);
  }
}

/** True when `key` was derived from this vault's passphrase, salt and KDF parameters. */
export function keyMatches(sealed: SealedVault, key: VaultKey): boolean {
  return (
    key.keyCheck.length === KEY_CHECK_LENGTH &&
    crypto.timingSafeEqual(key.keyCheck, sealed.keyCheck)
  );
}

/** Decrypt with an already derived key: the identities. */
export function openVault(sealed: SealedVault, key: VaultKey): VaultIdentity[] {
  return openVaultContents(sealed, key).identities;
}

/** Decrypt with an already derived key: identities and sections. */
export function openVaultContents(sealed: SealedVault, key: VaultKey): VaultContents {
  if (!keyMatches(sealed, key)) throw new VaultError('WRONG_PASSPHRASE', WRONG_PASSPHRASE_MESSAGE);
  const decipher = crypto.createDecipheriv('aes-256-gcm', key.encKey, sealed.nonce, {
    authTagLength: TAG_LENGTH,
  });
  decipher.setAAD(sealed.header);
  decipher.setAuthTag(sealed.tag);
  const plain = decipher.update(sealed.ciphertext);
  try {
    decipher.final();
  } catch {
    plain.fill(0); // unauthenticated: never look at it
    throw damaged('authentication failed (the header or the encrypted data was changed)');
  }
  try {
    return decodeContents(plain);
  } finally {
    plain.fill(0);
  }
}

/** Derive the key recorded in the header from the passphrase, then decrypt. */
export async function unlockVault(
  bytes: Buffer,
  passphrase: Buffer,
): Promise<VaultContents & { key: VaultKey }> {
  const sealed = parseVault(bytes);
  const key = await deriveVaultKey(passphrase, sealed.kdf, sealed.salt);
  return { ...openVaultContents(sealed, key), key };
}

/** A fresh key (new salt) for a new vault or a passphrase change. */
export async function newVaultKey(
  passphrase: Buffer,
  kdf: KdfParams = DEFAULT_KDF,
): Promise<VaultKey> {
  const problem = kdfParamsProblem(kdf);
  if (problem) throw new VaultError('INVALID', problem);
  return deriveVaultKey(passphrase, kdf);
}
