// SSH key material as the vault stores it: the agent-protocol private fields
// and the public key blob, converted to and from Node KeyObjects via JWK.
import * as crypto from 'node:crypto';
import { ecdsaKey, ed25519Key, rsaKey } from '../ssh/keyobject';
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

interface Curve {
  sshName: string; // nistp256 …
  jwkName: string; // P-256 …
  nodeName: string; // prime256v1 … (for generateKeyPair)
  bits: number;
  coordLen: number;
}

const CURVES: Curve[] = [
  { sshName: 'nistp256', jwkName: 'P-256', nodeName: 'prime256v1', bits: 256, coordLen: 32 },
  { sshName: 'nistp384', jwkName: 'P-384', nodeName: 'secp384r1', bits: 384, coordLen: 48 },
  { sshName: 'nistp521', jwkName: 'P-521', nodeName: 'secp521r1', bits: 521, coordLen: 66 },
];

export const SUPPORTED_KEY_TYPES = [
  'ssh-ed25519',
  ...CURVES.map((c) => `ecdsa-sha2-${c.sshName}`),
  'ssh-rsa',
];

const unb64u = (s: string | undefined, what: string): Buffer => {
  if (typeof s !== 'string') throw new KeyFormatError(`key is missing its ${what} component`);
  return Buffer.from(s, 'base64url');
};

/** Left-pad a big-endian magnitude to exactly `len` bytes (JWK EC fields are fixed length). */
function fixedLength(m: Buffer, len: number): Buffer {
  let i = 0;
  while (i < m.length - len && m[i] === 0) i++;
  m = m.subarray(i);
  if (m.length > len) throw new KeyFormatError('EC scalar longer than the curve allows');
  return Buffer.concat([Buffer.alloc(len - m.length), m]);
}

function curveByJwk(crv: string | undefined): Curve {
  const c = CURVES.find((x) => x.jwkName === crv);
  if (!c) throw new KeyFormatError(`unsupported elliptic curve ${crv ?? '(none)'}`);
  return c;
}

function curveByKeyType(keyType: string): Curve | undefined {
  return CURVES.find((c) => `ecdsa-sha2-${c.sshName}` === keyType);
}

/** Convert a Node private KeyObject (ed25519, P-256/384/521, RSA) to SSH key material. */
export function fromKeyObject(key: crypto.KeyObject, comment: string): KeyMaterial {
  if (key.type !== 'private') throw new KeyFormatError('not a private key');
  const kind = key.asymmetricKeyType;
  if (kind !== 'ed25519' && kind !== 'ec' && kind !== 'rsa')
    throw new KeyFormatError(
      `unsupported key algorithm ${kind ?? 'unknown'} (tsagent stores ed25519, ecdsa and rsa keys)`,
    );
  const jwk = key.export({ format: 'jwk' });
  if (kind === 'ed25519') {
    const seed = unb64u(jwk.d, 'd');
    const pk = unb64u(jwk.x, 'x');
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
  }
  if (kind === 'ec') {
    const c = curveByJwk(jwk.crv);
    const q = Buffer.concat([
      Buffer.of(4),
      fixedLength(unb64u(jwk.x, 'x'), c.coordLen),
      fixedLength(unb64u(jwk.y, 'y'), c.coordLen),
    ]);
    const keyType = `ecdsa-sha2-${c.sshName}`;
    return {
      keyType,
      privateFields: new Writer().string(c.sshName).string(q).mpint(unb64u(jwk.d, 'd')).toBuffer(),
      publicBlob: new Writer().string(keyType).string(c.sshName).string(q).toBuffer(),
      comment,
    };
  }
  // kind === 'rsa'
  const n = unb64u(jwk.n, 'n');
  const e = unb64u(jwk.e, 'e');
  const keyType = 'ssh-rsa';
  return {
    keyType,
    privateFields: new Writer()
      .mpint(n)
      .mpint(e)
      .mpint(unb64u(jwk.d, 'd'))
      .mpint(unb64u(jwk.qi, 'qi'))
      .mpint(unb64u(jwk.p, 'p'))
      .mpint(unb64u(jwk.q, 'q'))
      .toBuffer(),
    publicBlob: new Writer().string(keyType).mpint(e).mpint(n).toBuffer(),
    comment,
  };
}

/**
 * Rebuild the Node private KeyObject from SSH key material, checking that the
 * private fields are well formed and belong to `publicBlob`.
 */
export function toPrivateKeyObject(km: KeyMaterial): crypto.KeyObject {
  let key: crypto.KeyObject;
  try {
    const r = new Reader(km.privateFields);
    if (km.keyType === 'ssh-ed25519') {
      const pk = r.string();
      const sk = r.string();
      r.end();
      key = ed25519Key(pk, sk);
    } else if (curveByKeyType(km.keyType)) {
      const c = curveByKeyType(km.keyType) as Curve;
      const curveName = r.text();
      const q = r.string();
      const d = r.mpint();
      r.end();
      if (curveName !== c.sshName)
        throw new KeyFormatError(`curve ${curveName} does not match ${km.keyType}`);
      if (q.length !== 1 + 2 * c.coordLen || q[0] !== 4)
        throw new KeyFormatError('malformed EC point');
      key = ecdsaKey(c.sshName, q, d);
    } else if (km.keyType === 'ssh-rsa') {
      const [n, e, d, , p, q] = [r.mpint(), r.mpint(), r.mpint(), r.mpint(), r.mpint(), r.mpint()];
      r.end();
      key = rsaKey(e, n, d, p, q);
    } else {
      throw new KeyFormatError(`unsupported key type ${km.keyType}`);
    }
  } catch (err) {
    if (err instanceof KeyFormatError) throw err;
    // The shared builders say what is wrong ("… does not match public", "RSA primes …").
    throw new KeyFormatError(`invalid ${km.keyType} private key: ${(err as Error).message}`);
  }
  // Re-deriving the public blob proves the private half matches the public one.
  const again = fromKeyObject(key, km.comment);
  if (!again.publicBlob.equals(km.publicBlob))
    throw new KeyFormatError(`the ${km.keyType} private key does not match its public key`);
  return key;
}

/** Key size in bits as ssh-keygen -l reports it. */
export function keyBits(km: Pick<KeyMaterial, 'keyType' | 'publicBlob'>): number {
  if (km.keyType === 'ssh-ed25519') return 256;
  const c = curveByKeyType(km.keyType);
  if (c) return c.bits;
  if (km.keyType === 'ssh-rsa') {
    const r = new Reader(km.publicBlob);
    r.string();
    r.mpint();
    const n = r.mpint();
    return n.length === 0 ? 0 : (n.length - 1) * 8 + (32 - Math.clz32(n[0]));
  }
  return 0;
}

/** ssh-keygen -l's label for the algorithm: ED25519, ECDSA, RSA. */
export function keyLabel(keyType: string): string {
  if (keyType === 'ssh-ed25519') return 'ED25519';
  if (keyType.startsWith('ecdsa-')) return 'ECDSA';
  if (keyType === 'ssh-rsa') return 'RSA';
  return keyType.toUpperCase();
}

/** `SHA256:` + unpadded base64 of sha256(publicBlob), as ssh-keygen -l prints it. */
export function fingerprint(publicBlob: Buffer): string {
  return (
    'SHA256:' + crypto.createHash('sha256').update(publicBlob).digest('base64').replace(/=+$/, '')
  );
}

/** One authorized_keys line: `type base64 [comment]`. */
export function authorizedKeysLine(
  km: Pick<KeyMaterial, 'keyType' | 'publicBlob' | 'comment'>,
): string {
  const comment = km.comment.replace(/[\r\n]+/g, ' ');
  return `${km.keyType} ${km.publicBlob.toString('base64')}${comment ? ' ' + comment : ''}`;
}

export type GenerateType = 'ed25519' | 'ecdsa' | 'rsa';

export const RSA_MIN_BITS = 1024;
export const RSA_MAX_BITS = 16384;
export const RSA_DEFAULT_BITS = 3072;

/** Check -b for -t and return the effective size (ssh-keygen's defaults and limits). */
export function checkGenerateBits(type: GenerateType, bits?: number): number {
  if (type === 'ed25519') {
    if (bits !== undefined && bits !== 256)
      throw new KeyFormatError(`ed25519 keys have a fixed size; drop -b ${bits}`);
    return 256;
  }
  if (type === 'ecdsa') {
    const b = bits ?? 256;
    if (!CURVES.some((c) => c.bits === b))
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
  throw new KeyFormatError(`unknown key type ${String(type)}: use -t ed25519, ecdsa or rsa`);
}

/** Create a new key in memory only; nothing is written anywhere. */
export async function generateKey(
  type: GenerateType,
  bits: number | undefined,
  comment: string,
): Promise<KeyMaterial> {
  const size = checkGenerateBits(type, bits);
  const { privateKey } = await new Promise<crypto.KeyPairKeyObjectResult>((resolve, reject) => {
    const done = (err: Error | null, publicKey: crypto.KeyObject, privateKey: crypto.KeyObject) =>
      err ? reject(err) : resolve({ publicKey, privateKey });
    if (type === 'ed25519') crypto.generateKeyPair('ed25519', {}, done);
    else if (type === 'ecdsa')
      crypto.generateKeyPair(
        'ec',
        { namedCurve: CURVES.find((c) => c.bits === size)!.nodeName },
        done,
      );
    else crypto.generateKeyPair('rsa', { modulusLength: size, publicExponent: 65537 }, done);
  });
  return fromKeyObject(privateKey, comment);
}
