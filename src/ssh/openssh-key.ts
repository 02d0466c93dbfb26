// OpenSSH's private key file format, openssh-key-v1 (PROTOCOL.key), for key
// types the ssh2 library does not know (ssh-mldsa44-ed25519@openssh.com, the sk keys):
//   "openssh-key-v1\0", string cipher, string kdf, string kdf options,
//   uint32 1, string public key, string private section (encrypted unless "none")
// The private section: uint32 check, uint32 check (equal: the passphrase was
// right), string key type, the key's private fields (as in the agent protocol),
// string comment, padding 1, 2, 3…

import crypto = require('node:crypto');
import { readPrivateKey } from './privatekey';
import { isSkKeyType, readSkPrivateKey, skKeyBlob } from './sk-key';
import { WireError, WireReader } from './wire';

const MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
const BLOCK = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/;

/** The ciphers ssh-keygen encrypts with that Node has (chacha20-poly1305@openssh.com it has not). */
const CIPHERS: Record<string, { node: string; key: number; iv: number; tag: number }> = {
  'aes256-ctr': { node: 'aes-256-ctr', key: 32, iv: 16, tag: 0 },
  'aes192-ctr': { node: 'aes-192-ctr', key: 24, iv: 16, tag: 0 },
  'aes128-ctr': { node: 'aes-128-ctr', key: 16, iv: 16, tag: 0 },
  'aes256-cbc': { node: 'aes-256-cbc', key: 32, iv: 16, tag: 0 },
  'aes256-gcm@openssh.com': { node: 'aes-256-gcm', key: 32, iv: 12, tag: 16 },
};

/** bcrypt_pbkdf rounds above this are refused: a planted file must not cost hours. */
const MAX_ROUNDS = 1 << 16;

export type OpenSshKeyErrorCode =
  'NEEDS_PASSPHRASE' | 'WRONG_PASSPHRASE' | 'UNSUPPORTED' | 'MALFORMED';

export class OpenSshKeyError extends Error {
  constructor(
    readonly code: OpenSshKeyErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface OpenSshKey {
  keyType: string;
  publicBlob: Buffer;
  /** The agent-protocol private fields (what follows the key type in ADD_IDENTITY). */
  privateFields: Buffer;
  comment: string;
}

/** The armoured file's binary body, or null if the text holds no OpenSSH private key. */
export function openSshKeyBody(text: string): Buffer | null {
  const m = BLOCK.exec(text);
  return m ? Buffer.from(m[1].replace(/\s+/g, ''), 'base64') : null;
}

/** The key type of the (clear) public key in the file's header. */
export function openSshKeyType(body: Buffer): string {
  const r = header(body);
  return new WireReader(r.publicBlob).text();
}

function header(body: Buffer) {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC))
    throw new OpenSshKeyError('MALFORMED', 'not an openssh-key-v1 file (bad magic)');
  const r = new WireReader(body.subarray(MAGIC.length));
  const cipher = r.text();
  const kdf = r.text();
  const kdfOptions = r.string();
  if (r.uint32() !== 1)
    throw new OpenSshKeyError('UNSUPPORTED', 'files with several keys are not supported');
  const publicBlob = Buffer.from(r.string());
  const encrypted = r.string();
  const tag = r.rest();
  return { cipher, kdf, kdfOptions, publicBlob, encrypted, tag };
}

function decrypt(h: ReturnType<typeof header>, passphrase: Buffer | undefined): Buffer {
  if (h.cipher === 'none') {
    if (h.kdf !== 'none') throw new OpenSshKeyError('MALFORMED', 'a KDF without a cipher');
    return Buffer.from(h.encrypted);
  }
  const c = CIPHERS[h.cipher];
  if (!c)
    throw new OpenSshKeyError('UNSUPPORTED', `cipher ${JSON.stringify(h.cipher)} is not supported`);
  if (h.kdf !== 'bcrypt')
    throw new OpenSshKeyError('UNSUPPORTED', `KDF ${JSON.stringify(h.kdf)} is not supported`);
  if (!passphrase?.length)
    throw new OpenSshKeyError(
      'NEEDS_PASSPHRASE',
      'the key file is encrypted: a passphrase is needed',
    );
  const o = new WireReader(h.kdfOptions);
  const salt = o.string();
  const rounds = o.uint32();
  o.end();
  if (rounds < 1 || rounds > MAX_ROUNDS)
    throw new OpenSshKeyError('UNSUPPORTED', `bcrypt rounds ${rounds} out of range`);
  const bcrypt = require('bcrypt-pbkdf') as {
    pbkdf(
      pass: Buffer,
      passlen: number,
      salt: Buffer,
      saltlen: number,
      key: Buffer,
      keylen: number,
      rounds: number,
    ): number;
  };
  const keyIv = Buffer.alloc(c.key + c.iv);
  try {
    if (
      bcrypt.pbkdf(
        passphrase,
        passphrase.length,
        salt,
        salt.length,
        keyIv,
        keyIv.length,
        rounds,
      ) !== 0
    )
      throw new OpenSshKeyError('MALFORMED', 'bcrypt_pbkdf failed');
    const decipher = crypto.createDecipheriv(
      c.node,
      keyIv.subarray(0, c.key),
      keyIv.subarray(c.key),
    );
    decipher.setAutoPadding(false);
    if (c.tag) {
      if (h.tag.length !== c.tag)
        throw new OpenSshKeyError('MALFORMED', 'missing authentication tag');
      (decipher as crypto.DecipherGCM).setAuthTag(h.tag);
    }
    try {
      return Buffer.concat([decipher.update(h.encrypted), decipher.final()]);
    } catch {
      throw new OpenSshKeyError('WRONG_PASSPHRASE', 'wrong passphrase for the OpenSSH private key');
    }
  } finally {
    keyIv.fill(0);
  }
}

/** Read an openssh-key-v1 body. Throws OpenSshKeyError. */
export function parseOpenSshKey(body: Buffer, passphrase?: Buffer): OpenSshKey {
  let h: ReturnType<typeof header>;
  try {
    h = header(body);
  } catch (e) {
    if (e instanceof WireError)
      throw new OpenSshKeyError('MALFORMED', `malformed OpenSSH private key: ${e.message}`);
    throw e;
  }
  const plain = decrypt(h, passphrase);
  try {
    const r = new WireReader(plain);
    if (r.uint32() !== r.uint32())
      throw new OpenSshKeyError('WRONG_PASSPHRASE', 'wrong passphrase for the OpenSSH private key');
    const keyType = r.text();
    const before = r.remaining;
    // sk keys (sshkey_private_deserialize): the same fields as ADD_IDENTITY's, key handle included.
    const key = isSkKeyType(keyType)
      ? { publicBlob: skKeyBlob(readSkPrivateKey(keyType, r)) }
      : readPrivateKey(r, keyType);
    const privateFields = Buffer.from(
      plain.subarray(plain.length - before, plain.length - r.remaining),
    );
    const comment = r.string().toString('utf8');
    const pad = r.rest();
    if (!pad.every((b, i) => b === i + 1))
      throw new OpenSshKeyError('MALFORMED', 'bad padding in the private section');
    if (!key.publicBlob.equals(h.publicBlob))
      throw new OpenSshKeyError(
        'MALFORMED',
        "the OpenSSH file's public and private keys do not match",
      );
    return { keyType, publicBlob: key.publicBlob, privateFields, comment };
  } catch (e) {
    if (e instanceof WireError)
      throw new OpenSshKeyError('MALFORMED', `malformed OpenSSH private key: ${e.message}`);
    throw e;
  } finally {
    plain.fill(0);
  }
}
