// Private key files -> KeyMaterial. Every format goes through a Node KeyObject
// (then its fields -> SSH fields in sshkey.ts), so each input type has one exit path.
//   OpenSSH "openssh-key-v1" and PuTTY .ppk v2: ssh2's parser (it knows bcrypt-pbkdf
//     and the PuTTY cipher), then its PEM output into Node.
//   PEM PKCS#1 / SEC1 / PKCS#8, encrypted or not, and DER: Node's own parser.
//   PKCS#12 (.p12/.pfx): node-forge, then the PKCS#8 DER into Node.
import crypto = require('node:crypto');
import { errorMessage } from '../ssh/error';
import { MLDSA_KEY_TYPE } from '../ssh/mldsa';
import { SK_ECDSA, SK_ED25519 } from '../ssh/sk-key';
import { OpenSshKeyError, openSshKeyType, parseOpenSshKey } from '../ssh/openssh-key';
import { fromKeyObject, KeyFormatError, KeyMaterial } from './sshkey';

export type KeyFileErrorCode =
  'NEEDS_PASSPHRASE' | 'WRONG_PASSPHRASE' | 'NOT_A_KEY' | 'UNSUPPORTED';

/** Why a key file could not be read; `code` lets the caller ask for a passphrase or give up. */
export class KeyFileError extends Error {
  constructor(
    readonly code: KeyFileErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'KeyFileError';
  }
}

export type KeyFileFormat = 'openssh' | 'pem' | 'der' | 'pkcs12' | 'ppk';

export interface ImportedKey extends KeyMaterial {
  format: KeyFileFormat;
}

export interface ParseOptions {
  /** The key file's passphrase, when it is encrypted. */
  passphrase?: Buffer;
  /** Comment to use when the file carries none (ssh-add uses the file name). */
  defaultComment: string;
}

const PEM_KEY_BLOCK =
  /-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----\r?\n[\s\S]*?-----END \1-----/;
const OPENSSH_BLOCK =
  /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/;
const PUBLIC_KEY_LINE = /^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+ AAAA/;

/** Parse one private key file. Throws KeyFileError (never anything else). */
export function parseKeyFile(data: Buffer, opts: ParseOptions): ImportedKey {
  const text = data.toString('latin1');
  try {
    const openssh = OPENSSH_BLOCK.exec(text);
    if (openssh) return parseOpenSSH(openssh[0], openssh[1], opts);
    if (/^PuTTY-User-Key-File-\d+:/.test(text)) return parsePpk(text, opts);
    const pem = PEM_KEY_BLOCK.exec(text);
    if (pem) return parsePem(pem[0], opts);
    if (
      PUBLIC_KEY_LINE.test(text) ||
      text.includes('-----BEGIN PUBLIC KEY-----') ||
      text.includes('---- BEGIN SSH2 PUBLIC KEY')
    )
      throw new KeyFileError(
        'NOT_A_KEY',
        'this is a public key; import the private key file (usually the name without .pub)',
      );
    if (text.includes('-----BEGIN CERTIFICATE-----'))
      throw new KeyFileError('NOT_A_KEY', 'this holds a certificate but no private key');
    if (data.length > 0 && data[0] === 0x30) return parseBinary(data, opts);
    throw new KeyFileError(
      'NOT_A_KEY',
      'not a private key file (no OpenSSH, PEM, PKCS#12 or PuTTY key found)',
    );
  } catch (err) {
    if (err instanceof KeyFileError) throw err;
    if (err instanceof KeyFormatError) throw new KeyFileError('UNSUPPORTED', err.message);
    throw new KeyFileError('NOT_A_KEY', `cannot read the key: ${errorMessage(err)}`);
  }
}

function fromNode(key: crypto.KeyObject, comment: string, format: KeyFileFormat): ImportedKey {
  return { ...fromKeyObject(key, comment), format };
}

function needsPassphrase(what: string): KeyFileError {
  return new KeyFileError('NEEDS_PASSPHRASE', `${what} is encrypted: a passphrase is needed`);
}

function wrongPassphrase(what: string): KeyFileError {
  return new KeyFileError('WRONG_PASSPHRASE', `wrong passphrase for the ${what}`);
}

/** The OpenSSH container says in clear whether it is encrypted (ciphername != "none"). */
function opensshCipher(base64Body: string): string {
  const raw = Buffer.from(base64Body.replace(/\s+/g, ''), 'base64');
  const magic = Buffer.from('openssh-key-v1\0', 'latin1');
  if (raw.length < magic.length + 4 || !raw.subarray(0, magic.length).equals(magic))
    throw new KeyFileError('NOT_A_KEY', 'malformed OpenSSH private key (bad magic)');
  const len = raw.readUInt32BE(magic.length);
  return raw.toString('latin1', magic.length + 4, magic.length + 4 + len);
}

/** Key types ssh2's parser does not know, read by src/ssh/openssh-key.ts instead. */
const OWN_PARSER_TYPES = new Set([MLDSA_KEY_TYPE, SK_ED25519, SK_ECDSA]);

function parseOwnOpenSSH(raw: Buffer, opts: ParseOptions): ImportedKey {
  try {
    const k = parseOpenSshKey(raw, opts.passphrase);
    return { ...k, comment: k.comment || opts.defaultComment, format: 'openssh' };
  } catch (err) {
    if (!(err instanceof OpenSshKeyError)) throw err;
    const code = err.code === 'MALFORMED' ? 'NOT_A_KEY' : err.code;
    throw new KeyFileError(code, err.message);
  }
}

function parseOpenSSH(block: string, body: string, opts: ParseOptions): ImportedKey {
  const raw = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  let keyType = '';
  try {
    keyType = openSshKeyType(raw);
  } catch {
    // left to ssh2's parser, which says what is wrong
  }
  if (OWN_PARSER_TYPES.has(keyType)) return parseOwnOpenSSH(raw, opts);
  const encrypted = opensshCipher(body) !== 'none';
  if (encrypted && !opts.passphrase?.length) throw needsPassphrase('OpenSSH private key');
  const ssh2 = require('ssh2') as typeof import('ssh2');
  const parsed = ssh2.utils.parseKey(block, encrypted ? opts.passphrase : undefined);
  if (parsed instanceof Error) {
    if (encrypted && /passphrase|integrity/i.test(parsed.message))
      throw wrongPassphrase('OpenSSH private key');
    if (/Unsupported/i.test(parsed.message)) throw new KeyFileError('UNSUPPORTED', parsed.message);
    throw new KeyFileError('NOT_A_KEY', parsed.message);
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  const km = fromNode(
    crypto.createPrivateKey(key.getPrivatePEM()),
    key.comment || opts.defaultComment,
    'openssh',
  );
  if (!km.publicBlob.equals(key.getPublicSSH()))
    throw new KeyFileError('NOT_A_KEY', "the OpenSSH file's public and private keys do not match");
  return km;
}

function parsePpk(text: string, opts: ParseOptions): ImportedKey {
  const m = /^PuTTY-User-Key-File-(\d+): (\S+)\r?\nEncryption: (\S+)/.exec(text);
  const convert = 'convert it with: puttygen FILE -O private-openssh -o FILE.openssh';
  if (!m) throw new KeyFileError('NOT_A_KEY', 'malformed PuTTY key file');
  if (m[1] !== '2')
    throw new KeyFileError(
      'UNSUPPORTED',
      `PuTTY key format version ${m[1]} is not supported; ${convert}`,
    );
  if (m[2] !== 'ssh-rsa')
    throw new KeyFileError(
      'UNSUPPORTED',
      `PuTTY ${m[2]} keys are not supported (only ssh-rsa); ${convert}`,
    );
  const encrypted = m[3] !== 'none';
  if (encrypted && !opts.passphrase?.length) throw needsPassphrase('PuTTY key');
  const ssh2 = require('ssh2') as typeof import('ssh2');
  const parsed = ssh2.utils.parseKey(text, encrypted ? opts.passphrase : undefined);
  if (parsed instanceof Error) {
    if (encrypted) throw wrongPassphrase('PuTTY key');
    throw new KeyFileError('NOT_A_KEY', parsed.message);
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return fromNode(
    crypto.createPrivateKey(key.getPrivatePEM()),
    key.comment || opts.defaultComment,
    'ppk',
  );
}

function parsePem(block: string, opts: ParseOptions): ImportedKey {
  const encrypted =
    /^Proc-Type:\s*4,ENCRYPTED/m.test(block) || block.startsWith('-----BEGIN ENCRYPTED');
  if (encrypted && !opts.passphrase?.length) throw needsPassphrase('PEM private key');
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey({
      key: block,
      format: 'pem',
      passphrase: encrypted ? opts.passphrase : undefined,
    });
  } catch (err) {
    if (encrypted) throw wrongPassphrase('PEM private key');
    throw new KeyFileError('NOT_A_KEY', `malformed PEM private key: ${errorMessage(err)}`);
  }
  return fromNode(key, opts.defaultComment, 'pem');
}

/** Binary input: PKCS#12 first, then bare DER private keys. */
function parseBinary(data: Buffer, opts: ParseOptions): ImportedKey {
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      return fromNode(
        crypto.createPrivateKey({ key: data, format: 'der', type }),
        opts.defaultComment,
        'der',
      );
    } catch {
      // not this encoding; try the next
    }
  }
  return parsePkcs12(data, opts);
}

function parsePkcs12(data: Buffer, opts: ParseOptions): ImportedKey {
  const forge = require('node-forge') as typeof import('node-forge');
  let asn1: import('node-forge').asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(forge.util.createBuffer(data.toString('binary')));
  } catch {
    throw new KeyFileError('NOT_A_KEY', 'not a private key file (binary data that is not DER)');
  }
  // Many .p12 files use an empty password; only ask when that does not open it.
  const password = opts.passphrase?.length ? opts.passphrase.toString('utf8') : '';
  let p12: import('node-forge').pkcs12.Pkcs12Pfx;
  try {
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, password);
  } catch (err) {
    const msg = errorMessage(err);
    if (/password|MAC|decrypt/i.test(msg)) {
      if (!password) throw needsPassphrase('PKCS#12 file');
      throw wrongPassphrase('PKCS#12 file');
    }
    throw new KeyFileError('NOT_A_KEY', `not a PKCS#12 file or a DER private key: ${msg}`);
  }
  const shrouded = forge.pki.oids.pkcs8ShroudedKeyBag;
  const plain = forge.pki.oids.keyBag;
  const bags = [
    ...(p12.getBags({ bagType: shrouded })[shrouded] ?? []),
    ...(p12.getBags({ bagType: plain })[plain] ?? []),
  ];
  if (bags.length === 0)
    throw new KeyFileError('NOT_A_KEY', 'the PKCS#12 file holds no private key');
  const bag = bags[0];
  // forge only models RSA keys; for EC/Ed25519 it leaves the decrypted PrivateKeyInfo in bag.asn1.
  const info = bag.key
    ? forge.pki.wrapRsaPrivateKey(
        forge.pki.privateKeyToAsn1(bag.key as import('node-forge').pki.rsa.PrivateKey),
      )
    : (bag as unknown as { asn1?: import('node-forge').asn1.Asn1 }).asn1;
  if (!info) throw new KeyFileError('NOT_A_KEY', 'the PKCS#12 key bag could not be read');
  const der = Buffer.from(forge.asn1.toDer(info).getBytes(), 'binary');
  const name = bag.attributes?.friendlyName?.[0];
  return fromNode(
    crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }),
    typeof name === 'string' && name ? name : opts.defaultComment,
    'pkcs12',
  );
}
