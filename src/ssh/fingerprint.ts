// Key fingerprints as ssh-keygen -l prints them (sshkey_fingerprint()).

import crypto = require('node:crypto');

/** `SHA256:…` (unpadded base64) or `MD5:aa:bb:…` of a public key blob. */
export function fingerprint(publicBlob: Buffer, hash: 'sha256' | 'md5' = 'sha256'): string {
  const digest = crypto.createHash(hash).update(publicBlob).digest();
  if (hash === 'md5') return 'MD5:' + digest.toString('hex').replace(/(..)(?!$)/g, '$1:');
  return 'SHA256:' + digest.toString('base64').replace(/=+$/, '');
}
