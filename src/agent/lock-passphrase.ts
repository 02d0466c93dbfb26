// The lock passphrase of SSH_AGENTC_LOCK, kept only as a salted scrypt hash
// (OpenSSH keeps a salted bcrypt_pbkdf hash: ssh-agent.c process_lock_agent).

import crypto = require('node:crypto');

export interface LockHash {
  salt: Buffer;
  hash: Buffer;
}

function scryptOf(passphrase: Buffer, salt: Buffer): Promise<Buffer> {
  // Pre-hash: scrypt's HMAC zero-pads short keys, so "pw" and "pw\0" would collide.
  // The pre-hash is as good as the passphrase: wiped once scrypt has read it.
  const pre = crypto.createHash('sha512').update(passphrase).digest();
  return new Promise((resolve, reject) =>
    crypto.scrypt(pre, salt, 32, { N: 1 << 14 }, (err, key) => {
      pre.fill(0);
      if (err) reject(err);
      else resolve(key);
    }),
  );
}

/** Hash a new lock passphrase under a fresh salt. */
export async function hashLockPassphrase(passphrase: Buffer): Promise<LockHash> {
  const salt = crypto.randomBytes(16);
  return { salt, hash: await scryptOf(passphrase, salt) };
}

/** Is `passphrase` the one `lock` was hashed from? (Constant-time comparison.) */
export async function lockPassphraseMatches(lock: LockHash, passphrase: Buffer): Promise<boolean> {
  const hash = await scryptOf(passphrase, lock.salt);
  return crypto.timingSafeEqual(lock.hash, hash);
}
