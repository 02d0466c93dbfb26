// The one table of the NIST curves SSH uses (RFC 5656 §6.1, §10.1): every name
// a curve goes by, its sizes and the hash its ECDSA signatures use.

export interface Curve {
  /** The SSH curve identifier: `nistp256` … */
  readonly ssh: 'nistp256' | 'nistp384' | 'nistp521';
  /** The key type: `ecdsa-sha2-nistp256` … */
  readonly keyType: string;
  /** The JWK `crv`: `P-256` … */
  readonly jwk: string;
  /** OpenSSL's name (createECDH, generateKeyPair): `prime256v1` … */
  readonly openssl: string;
  /** The DER OID of the named curve (SEC1 ECParameters). */
  readonly oid: string;
  /** Bytes in one field element (a coordinate, a scalar). */
  readonly size: number;
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly bits: 256 | 384 | 521;
}

export const CURVES: readonly Curve[] = [
  {
    ssh: 'nistp256',
    keyType: 'ecdsa-sha2-nistp256',
    jwk: 'P-256',
    openssl: 'prime256v1',
    oid: '1.2.840.10045.3.1.7',
    size: 32,
    hash: 'sha256',
    bits: 256,
  },
  {
    ssh: 'nistp384',
    keyType: 'ecdsa-sha2-nistp384',
    jwk: 'P-384',
    openssl: 'secp384r1',
    oid: '1.3.132.0.34',
    size: 48,
    hash: 'sha384',
    bits: 384,
  },
  {
    ssh: 'nistp521',
    keyType: 'ecdsa-sha2-nistp521',
    jwk: 'P-521',
    openssl: 'secp521r1',
    oid: '1.3.132.0.35',
    size: 66,
    hash: 'sha512',
    bits: 521,
  },
];

/** The curve of an SSH curve identifier (`nistp256`), or undefined. */
export function curveBySshName(name: string): Curve | undefined {
  return CURVES.find((c) => c.ssh === name);
}

/** The curve of an ECDSA key type (`ecdsa-sha2-nistp256`), or undefined. */
export function curveByKeyType(keyType: string): Curve | undefined {
  return CURVES.find((c) => c.keyType === keyType);
}

/** The curve of a JWK `crv` (`P-256`), or undefined. */
export function curveByJwk(crv: string | undefined): Curve | undefined {
  return CURVES.find((c) => c.jwk === crv);
}

/** The curve of a size in bits (ssh-keygen -b), or undefined. */
export function curveByBits(bits: number): Curve | undefined {
  return CURVES.find((c) => c.bits === bits);
}
