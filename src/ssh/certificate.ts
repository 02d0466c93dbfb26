// OpenSSH certificates (PROTOCOL.certkeys): a public key, its principals and
// validity, signed by a CA key.

import { CERT_SUFFIX, PublicParts, baseKeyType, readPublicParts } from './publickey';
import { WireError, WireReader } from './wire';

/** PROTOCOL.certkeys: SSH2_CERT_TYPE_USER / SSH2_CERT_TYPE_HOST. */
export const CERT_TYPE = { USER: 1, HOST: 2 } as const;

/** The fields of an OpenSSH certificate that policy needs. */
export interface Certificate {
  keyType: string;
  type: number; // CERT_TYPE.USER or CERT_TYPE.HOST
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  /** Critical options (raw); host certificates must have none. */
  criticalOptions: Buffer;
  signatureKey: Buffer;
  /** The CA's signature, and the bytes it covers (everything before it). */
  signature: Buffer;
  signedData: Buffer;
}

/** Read a certificate blob of `keyType`: its fields and the certified key's public parts. Throws WireError. */
export function readCertificate(
  cert: Buffer,
  keyType: string,
): { cert: Certificate; parts: PublicParts } {
  const r = new WireReader(cert);
  if (r.text() !== keyType) throw new WireError('certificate type does not match key type');
  r.string(); // nonce
  const parts = readPublicParts(r, baseKeyType(keyType));
  r.uint64(); // serial
  const type = r.uint32();
  // Lenient: OpenSSH does not require UTF-8 here, and policy compares exact strings.
  const keyId = r.string().toString('utf8');
  const pr = new WireReader(r.string());
  const principals: string[] = [];
  while (pr.remaining > 0) principals.push(pr.string().toString('utf8'));
  const validAfter = r.uint64();
  const validBefore = r.uint64();
  const criticalOptions = Buffer.from(r.string());
  r.string(); // extensions
  r.string(); // reserved
  const signatureKey = Buffer.from(r.string());
  const signedData = cert.subarray(0, cert.length - r.remaining);
  const signature = Buffer.from(r.string());
  r.end();
  return {
    cert: {
      keyType,
      type,
      keyId,
      principals,
      validAfter,
      validBefore,
      criticalOptions,
      signatureKey,
      signature,
      signedData,
    },
    parts,
  };
}

/** Parse a certificate blob; null if it is not one (or is malformed). */
export function parseCertificate(blob: Buffer): Certificate | null {
  try {
    const keyType = new WireReader(blob).text();
    if (!keyType.endsWith(CERT_SUFFIX)) return null;
    return readCertificate(blob, keyType).cert;
  } catch {
    return null;
  }
}
