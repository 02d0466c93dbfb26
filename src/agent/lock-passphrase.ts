// The hash a LOCK passphrase is kept as while the agent is locked: the
// passphrase itself is never kept.

import * as crypto from 'node:crypto';

/** scrypt (N=2^14) of the passphrase's SHA-512. */
export function hashLockPassphrase(passphrase: Buffer, salt: Buffer): Promise<Buffer> {
  // Pre-hash: scrypt's HMAC zero-pads short keys, so "pw" and "pw\0" would collide.
  const pre = crypto.createHash('sha512').update(passphrase).digest();
  return new Promise((resolve, reject) =>
    crypto.scrypt(pre, salt, 32, { N: 1 << 14 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}
