// SSH key material as the vault stores it: the agent-protocol private fields
// and the public key blob. What is the vault's: turning an imported or newly
// generated Node KeyObject into those fields. Reading them back, bit sizes and
// fingerprints are src/ssh's (the same code the agent uses).
import crypto = require('node:crypto');
import { CURVES, curveByBits } from '../ssh/curves';
import { DerReader } from '../ssh/der';
import { errorMessage } from '../ssh/error';
import { RSA_MAX_BITS, RSA_MIN_BITS } from '../ssh/keyobject';
import { MLDSA_KEY_TYPE, mlDsaKeyPair } from '../ssh/mldsa';
import { readPrivateKey } from '../ssh/privatekey';
import { parsePublicBlob, publicBits } from '../ssh/publickey';
import { isSkKeyType, SK_ECDSA, SK_ED25519 } from '../ssh/sk-key';
import { WireReader as Reader, WireWriter as Writer } from '../ssh/wire';

/**
 * One private key in SSH agent form. `privateFields` are exactly the bytes that
 * follow the key type in SSH_AGENTC_ADD_IDENTITY (draft-miller-ssh-agent §4.2.3):
 *   ssh-ed25519:          string pk(32), string sk(64 = seed || pk)
 *   ecdsa-sha2-nistpNNN:  string curve, string Q (0x04 || X || Y), mpint d
 *   ssh-rsa:              mpint n, mpint e, mpint d, mpint iqmp, mpint p, mpint q
 * `publicBlob` is the SSH public key blob (what authorized_keys base64-encodes).
 */
export interface KeyMaterial {
  keyType: string;
  privateFields: Buffer;
  publicBlob: Buffer;
  comment: string;
}

export class KeyFormatError extends Error {}

export const SUPPORTED_KEY_TYPES = [
  'ssh-ed25519',
  ...CURVES.map((c) => c.keyType),
  'ssh-rsa',
  'ssh-dss',
  MLDSA_KEY_TYPE,
];

/** The public key BIT STRING of a KeyObject's SPKI (the point, or the raw Ed25519 key). */
function spkiKey(key: crypto.KeyObject): Buffer {
  const spki = new DerReader(crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }));
  const body = new DerReader(spki.next(0x30));
  body.next(0x30); // AlgorithmIdentifier
  return body.next(0x03).subarray(1); // no unused bits
}

/** Left-pad a big-endian magnitude to exactly `len` bytes. */
function fixedLength(m: Buffer, len: number): Buffer {
  let i = 0;
  while (i < m.length - len && m[i] === 0) i++;
  m = m.subarray(i);
  if (m.length > len) throw new KeyFormatError('EC scalar longer than the curve allows');
  return Buffer.concat([Buffer.alloc(len - m.length), m]);
}

/**
 * Convert a Node private KeyObject (ed25519, P-256/384/521, RSA, DSA) to SSH key
 * material. The fields are read from Node's DER export (RFC 8410 PKCS#8, SEC1,
 * PKCS#1), not JWK: the DER buffer is wiped afterwards, strings could not be.
 */
export function fromKeyObject(key: crypto.KeyObject, comment: string): KeyMaterial {
  if (key.type !== 'private') throw new KeyFormatError('not a private key');
  const kind = key.asymmetricKeyType;
  if (kind === 'dsa') return fromDsaKeyObject(key, comment);
  if (kind !== 'ed25519' && kind !== 'ec' && kind !== 'rsa')
    throw new KeyFormatError(
      `unsupported key algorithm ${kind ?? 'unknown'} (tsagent stores ed25519, ecdsa, rsa, dsa and mldsa44-ed25519 keys)`,
    );
  if (kind === 'ed25519') {
    const der = key.export({ format: 'der', type: 'pkcs8' });
    try {
      const info = new DerReader(new DerReader(der).next(0x30));
      info.integer(); // version
      info.next(0x30); // AlgorithmIdentifier
      const seed = new DerReader(info.next(0x04)).next(0x04);
      const pk = spkiKey(key);
      const keyType = 'ssh-ed25519';
      return {
        keyType,
        privateFields: new Writer()
          .string(pk)
          .string(Buffer.concat([seed, pk]))
          .toBuffer(),
        publicBlob: new Writer().string(keyType).string(pk).toBuffer(),
        comment,
      };
    } finally {
      der.fill(0);
    }
  }
  if (kind === 'ec') {
    const named = key.asymmetricKeyDetails?.namedCurve;
    const c = CURVES.find((x) => x.openssl === named);
    if (!c) throw new KeyFormatError(`unsupported elliptic curve ${named ?? '(none)'}`);
    const der = key.export({ format: 'der', type: 'sec1' });
    try {
      const ec = new DerReader(new DerReader(der).next(0x30));
      ec.integer(); // version 1
      const d = fixedLength(ec.next(0x04), c.size);
      const q = spkiKey(key);
      const keyType = c.keyType;
      return {
        keyType,
        privateFields: new Writer().string(c.ssh).string(q).mpint(d).toBuffer(),
        publicBlob: new Writer().string(keyType).string(c.ssh).string(q).toBuffer(),
        comment,
      };
    } finally {
      der.fill(0);
    }
  }
  // kind === 'rsa': RSAPrivateKey { 0, n, e, d, p, q, dp, dq, qinv }
  const der = key.export({ format: 'der', type: 'pkcs1' });
  try {
    const r = new DerReader(new DerReader(der).next(0x30));
    r.integer(); // version
    const [n, e, d, p, q] = [r.integer(), r.integer(), r.integer(), r.integer(), r.integer()];
    r.integer(); // dp
    r.integer(); // dq
    const qi = r.integer();
    const keyType = 'ssh-rsa';
    return {
      keyType,
      privateFields: new Writer().mpint(n).mpint(e).mpint(d).mpint(qi).mpint(p).mpint(q).toBuffer(),
      publicBlob: new Writer().string(keyType).mpint(e).mpint(n).toBuffer(),
      comment,
    };
  } finally {
    der.fill(0);
  }
}

/**
 * A DSA KeyObject's fields, read from its PKCS#8 and SPKI DER (Node has no JWK
 * for DSA): PrivateKeyInfo { 0, { id-dsa, { p, q, g } }, OCTET STRING { x } }
 * and SubjectPublicKeyInfo { { id-dsa, { p, q, g } }, BIT STRING { y } }.
 */
function fromDsaKeyObject(key: crypto.KeyObject, comment: string): KeyMaterial {
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
  try {
    const info = new DerReader(new DerReader(pkcs8).next(0x30));
    info.integer(); // version
    const alg = new DerReader(info.next(0x30));
    alg.next(0x06);
    const params = new DerReader(alg.next(0x30));
    const [p, q, g] = [params.integer(), params.integer(), params.integer()];
    const x = new DerReader(info.next(0x04)).integer();
    const spki = new DerReader(crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }));
    const pub = new DerReader(spki.next(0x30));
    pub.next(0x30);
    const y = new DerReader(pub.next(0x03).subarray(1)).integer();
    const keyType = 'ssh-dss';
    return {
      keyType,
      privateFields: new Writer().mpint(p).mpint(q).mpint(g).mpint(y).mpint(x).toBuffer(),
      publicBlob: new Writer().string(keyType).mpint(p).mpint(q).mpint(g).mpint(y).toBuffer(),
      comment,
    };
  } catch (e) {
    throw new KeyFormatError(`unreadable DSA key: ${errorMessage(e)}`);
  } finally {
    pkcs8.fill(0);
  }
}

/**
 * Rebuild the Node private KeyObject from SSH key material, checking that the
 * private fields are well formed and belong to `publicBlob`.
 */
export function toPrivateKeyObject(km: KeyMaterial): crypto.KeyObject {
  if (!SUPPORTED_KEY_TYPES.includes(km.keyType))
    throw new KeyFormatError(`unsupported key type ${JSON.stringify(km.keyType)}`);
  let key;
  try {
    const r = new Reader(km.privateFields);
    key = readPrivateKey(r, km.keyType);
    r.end();
  } catch (err) {
    // The shared parser says what is wrong ("… does not match public", "RSA primes …").
    throw new KeyFormatError(`invalid ${km.keyType} private key: ${errorMessage(err)}`);
  }
  // The public blob rebuilt from the private fields must be the one stored with them.
  if (!key.publicBlob.equals(km.publicBlob))
    throw new KeyFormatError(`the ${km.keyType} private key does not match its public key`);
  return key.keyObject;
}

/** Key size in bits as ssh-keygen -l reports it (0 for a blob that cannot be read). */
export function keyBits(km: Pick<KeyMaterial, 'keyType' | 'publicBlob'>): number {
  if (isSkKeyType(km.keyType)) return 256; // both are 256-bit curves (ssh-keygen -l)
  try {
    return publicBits(parsePublicBlob(km.publicBlob).parts);
  } catch {
    return 0;
  }
}

/** ssh-keygen -l's label for the algorithm: ED25519, ECDSA, RSA. */
export function keyLabel(keyType: string): string {
  if (keyType === 'ssh-ed25519') return 'ED25519';
  if (keyType.startsWith('ecdsa-')) return 'ECDSA';
  if (keyType === 'ssh-rsa') return 'RSA';
  if (keyType === 'ssh-dss') return 'DSA';
  if (keyType === SK_ED25519) return 'ED25519-SK';
  if (keyType === SK_ECDSA) return 'ECDSA-SK';
  if (keyType === MLDSA_KEY_TYPE) return 'MLDSA44-ED25519'; // OpenSSH's shortname (ssh-mldsa.c)
  return keyType.toUpperCase();
}

/** One authorized_keys line: `type base64 [comment]`. */
export function authorizedKeysLine(
  km: Pick<KeyMaterial, 'keyType' | 'publicBlob' | 'comment'>,
): string {
  const comment = km.comment.replace(/[\r\n]+/g, ' ');
  return `${km.keyType} ${km.publicBlob.toString('base64')}${comment ? ' ' + comment : ''}`;
}

export type GenerateType = 'ed25519' | 'ecdsa' | 'rsa' | 'mldsa44-ed25519';

export const RSA_DEFAULT_BITS = 3072;

/** Check -b for -t and return the effective size (ssh-keygen's defaults and limits). */
export function checkGenerateBits(type: GenerateType, bits?: number): number {
  if (type === 'ed25519' || type === 'mldsa44-ed25519') {
    if (bits !== undefined && bits !== 256)
      throw new KeyFormatError(`${type} keys have a fixed size; drop -b ${bits}`);
    return 256;
  }
  if (type === 'ecdsa') {
    const b = bits ?? 256;
    if (!curveByBits(b))
      throw new KeyFormatError(`ecdsa keys are 256, 384 or 521 bits, not ${b}: use -b 256|384|521`);
    return b;
  }
  if (type === 'rsa') {
    const b = bits ?? RSA_DEFAULT_BITS;
    if (!Number.isInteger(b) || b < RSA_MIN_BITS || b > RSA_MAX_BITS)
      throw new KeyFormatError(
        `rsa keys must have ${RSA_MIN_BITS}..${RSA_MAX_BITS} bits, not ${b}`,
      );
    return b;
  }
  throw new KeyFormatError(
    `unknown key type ${JSON.stringify(String(type))}: use -t ed25519, ecdsa, rsa or mldsa44-ed25519`,
  );
}

/** Create a new key in memory only; nothing is written anywhere. */
export async function generateKey(
  type: GenerateType,
  bits: number | undefined,
  comment: string,
): Promise<KeyMaterial> {
  const size = checkGenerateBits(type, bits);
  if (type === 'mldsa44-ed25519') return generateMlDsaEd25519(comment);
  const curve = type === 'ecdsa' ? curveByBits(size) : undefined;
  const { privateKey } = await new Promise<crypto.KeyPairKeyObjectResult>((resolve, reject) => {
    const done = (err: Error | null, publicKey: crypto.KeyObject, privateKey: crypto.KeyObject) =>
      err ? reject(err) : resolve({ publicKey, privateKey });
    if (type === 'ed25519') crypto.generateKeyPair('ed25519', {}, done);
    else if (curve) crypto.generateKeyPair('ec', { namedCurve: curve.openssl }, done);
    else crypto.generateKeyPair('rsa', { modulusLength: size, publicExponent: 65537 }, done);
  });
  return fromKeyObject(privateKey, comment);
}

/** A new ssh-mldsa44-ed25519 key: a random ML-DSA-44 seed and a new Ed25519 key. */
async function generateMlDsaEd25519(comment: string): Promise<KeyMaterial> {
  const ed = await new Promise<crypto.KeyObject>((resolve, reject) =>
    crypto.generateKeyPair('ed25519', {}, (err, _pub, priv) => (err ? reject(err) : resolve(priv))),
  );
  // PKCS#8 of Ed25519 (RFC 8410) ends with the 32-byte seed; SPKI with the public key.
  const pkcs8 = ed.export({ format: 'der', type: 'pkcs8' });
  const edPk = crypto.createPublicKey(ed).export({ format: 'der', type: 'spki' }).subarray(-32);
  const sk = Buffer.concat([crypto.randomBytes(32), pkcs8.subarray(-32)]);
  pkcs8.fill(0);
  const { publicKey, secretKey } = mlDsaKeyPair(sk.subarray(0, 32));
  secretKey.fill(0);
  const pk = Buffer.concat([Buffer.from(publicKey), edPk]);
  const privateFields = new Writer().string(pk).string(sk).toBuffer();
  sk.fill(0);
  return {
    keyType: MLDSA_KEY_TYPE,
    privateFields,
    publicBlob: new Writer().string(MLDSA_KEY_TYPE).string(pk).toBuffer(),
    comment,
  };
}
