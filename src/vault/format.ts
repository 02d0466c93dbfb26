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
//                 skProvider? (security keys), plus unknown keys kept as-is)
//   zero padding up to a multiple of 4096 bytes, so the file size does not
//   reveal the number of keys of a small vault.
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
import { KeyMaterial } from './sshkey';
import { errorMessage } from '../ssh/error';
import { WireReader as Reader, WireWriter as Writer } from '../ssh/wire';

export const MAGIC = Buffer.from('TSAGENTV', 'latin1');
export const FORMAT_VERSION = 1;
export const KDF_ARGON2ID = 1;
export const CIPHER_AES_256_GCM = 1;
export const NONCE_LENGTH = 12;
export const TAG_LENGTH = 16;
export const DIGEST_LENGTH = 32;
export const HEADER_LENGTH = 70;
export const PAD_BLOCK = 4096;

/** One stored identity: the key plus the defaults the agent applies when serving it. */
export interface VaultIdentity extends KeyMaterial {
  /** Unix time (seconds) when the key entered the vault. */
  created: number;
  /** Unix time (seconds) of the last signature, maintained by the agent. */
  lastUsed?: number;
  /** Ask for confirmation before each use (ssh-add -c). */
  confirm?: boolean;
  /** Seconds the agent keeps the key after unlocking (ssh-add -t). */
  lifetime?: number;
  /** Destination constraints (ssh-add -h syntax: `host`, `user@host`, `from>to`). */
  allow?: string[];
  /** Ask for confirmation only when used through a forwarded connection. */
  confirmForwarded?: boolean;
  /** Never listed nor used through a forwarded connection (only on this machine). */
  localOnly?: boolean;
  /** Security keys: the middleware that signs (ssh-add's SSH_SK_PROVIDER; "internal" is OpenSSH's). */
  skProvider?: string;
  /** Metadata keys written by a newer tsagent, preserved on rewrite. */
  extra?: Record<string, unknown>;
}

export type VaultErrorCode =
  | 'WRONG_PASSPHRASE'
  | 'DAMAGED'
  | 'UNSUPPORTED'
  | 'NOT_FOUND'
  | 'EXISTS'
  | 'PERMISSIONS'
  | 'WRITE_FAILED'
  | 'CHANGED'
  | 'INVALID';

/** Every vault failure; `code` tells callers which kind without parsing messages. */
export class VaultError extends Error {
  constructor(
    readonly code: VaultErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'VaultError';
  }
}

export const WRONG_PASSPHRASE_MESSAGE = 'wrong passphrase';
export const DAMAGED_MESSAGE = 'vault is damaged or was tampered with';

const damaged = (detail: string) => new VaultError('DAMAGED', `${DAMAGED_MESSAGE}: ${detail}`);

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

const KNOWN_META = new Set([
  'comment',
  'created',
  'lastUsed',
  'confirm',
  'lifetime',
  'allow',
  'confirmForwarded',
  'localOnly',
  'skProvider',
]);

export function encodePayload(identities: readonly VaultIdentity[]): Buffer {
  const w = new Writer().uint32(identities.length);
  for (const id of identities) {
    checkIdentity(id);
    const meta: Record<string, unknown> = { ...(id.extra ?? {}) };
    meta.comment = id.comment;
    meta.created = id.created;
    if (id.lastUsed !== undefined) meta.lastUsed = id.lastUsed;
    if (id.confirm !== undefined) meta.confirm = id.confirm;
    if (id.lifetime !== undefined) meta.lifetime = id.lifetime;
    if (id.allow !== undefined) meta.allow = id.allow;
    if (id.confirmForwarded !== undefined) meta.confirmForwarded = id.confirmForwarded;
    if (id.localOnly !== undefined) meta.localOnly = id.localOnly;
    if (id.skProvider !== undefined) meta.skProvider = id.skProvider;
    w.string(id.keyType)
      .string(id.publicBlob)
      .string(id.privateFields)
      .string(JSON.stringify(meta));
  }
  const data = w.toBuffer();
  const padded = Buffer.alloc(Math.ceil((data.length + 1) / PAD_BLOCK) * PAD_BLOCK);
  data.copy(padded);
  data.fill(0);
  return padded;
}

/** Refuse identities that would not read back (a bug in the caller, not damage). */
function checkIdentity(id: VaultIdentity): void {
  const bad = (what: string) =>
    new VaultError('INVALID', `invalid identity ${JSON.stringify(id.comment)}: ${what}`);
  if (typeof id.keyType !== 'string' || !id.keyType) throw bad('no key type');
  if (!Buffer.isBuffer(id.publicBlob) || !Buffer.isBuffer(id.privateFields))
    throw bad('key fields must be Buffers');
  if (typeof id.comment !== 'string') throw bad('comment must be a string');
  if (!Number.isFinite(id.created)) throw bad('created must be a number');
  if (id.lastUsed !== undefined && !Number.isFinite(id.lastUsed))
    throw bad('lastUsed must be a number');
  if (id.confirm !== undefined && typeof id.confirm !== 'boolean')
    throw bad('confirm must be a boolean');
  if (id.localOnly !== undefined && typeof id.localOnly !== 'boolean')
    throw bad('localOnly must be a boolean');
  if (id.lifetime !== undefined && !(Number.isInteger(id.lifetime) && id.lifetime > 0))
    throw bad('lifetime must be a positive number of seconds');
  if (
    id.allow !== undefined &&
    !(Array.isArray(id.allow) && id.allow.every((a) => typeof a === 'string'))
  )
    throw bad('allow must be a list of strings');
  if (id.skProvider !== undefined && (typeof id.skProvider !== 'string' || !id.skProvider))
    throw bad('skProvider must be a non-empty string');
}

export function decodePayload(plain: Buffer): VaultIdentity[] {
  try {
    const r = new Reader(plain);
    const count = r.uint32();
    const out: VaultIdentity[] = [];
    for (let i = 0; i < count; i++) {
      const keyType = r.text();
      const publicBlob = Buffer.from(r.string());
      const privateFields = Buffer.from(r.string());
      const meta = JSON.parse(r.text()) as Record<string, unknown>;
      if (typeof meta !== 'object' || meta === null || Array.isArray(meta))
        throw new Error('metadata is not an object');
      if (new Reader(publicBlob).text() !== keyType) throw new Error('public key type mismatch');
      const extra = Object.fromEntries(Object.entries(meta).filter(([k]) => !KNOWN_META.has(k)));
      const id: VaultIdentity = {
        keyType,
        publicBlob,
        privateFields,
        comment: meta.comment as string,
        created: meta.created as number,
      };
      if (meta.lastUsed !== undefined) id.lastUsed = meta.lastUsed as number;
      if (meta.confirm !== undefined) id.confirm = meta.confirm as boolean;
      if (meta.lifetime !== undefined) id.lifetime = meta.lifetime as number;
      if (meta.allow !== undefined) id.allow = meta.allow as string[];
      if (meta.confirmForwarded !== undefined)
        id.confirmForwarded = meta.confirmForwarded as boolean;
      if (meta.localOnly !== undefined) id.localOnly = meta.localOnly as boolean;
      if (meta.skProvider !== undefined) id.skProvider = meta.skProvider as string;
      if (Object.keys(extra).length) id.extra = extra;
      checkIdentity(id);
      out.push(id);
    }
    if (r.rest().some((b) => b !== 0)) throw new Error('garbage after the identities');
    return out;
  } catch (err) {
    // Only reachable with the right key, i.e. a bug or a forger who knows the passphrase.
    throw damaged(`payload does not decode: ${errorMessage(err)}`);
  }
}

/** Encrypt identities under an already derived key, with a fresh nonce. */
export function sealVault(identities: readonly VaultIdentity[], key: VaultKey): Buffer {
  const plain = encodePayload(identities);
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

/** Decrypt with an already derived key. */
export function openVault(sealed: SealedVault, key: VaultKey): VaultIdentity[] {
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
    return decodePayload(plain);
  } finally {
    plain.fill(0);
  }
}

/** Derive the key recorded in the header from the passphrase, then decrypt. */
export async function unlockVault(
  bytes: Buffer,
  passphrase: Buffer,
): Promise<{ identities: VaultIdentity[]; key: VaultKey }> {
  const sealed = parseVault(bytes);
  const key = await deriveVaultKey(passphrase, sealed.kdf, sealed.salt);
  return { identities: openVault(sealed, key), key };
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
