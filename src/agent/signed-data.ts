// What a SIGN_REQUEST asks to sign: an SSH login, an SSHSIG signature (git,
// files, …), or bytes we do not recognise. The one decoder of signed data:
// the keyring decodes a request's data once and hands the value to the
// destination checks (destination.ts), the confirmation prompt and the audit
// record; the websafe rule of a security key (websafe.ts) asks it too.
// Decoding never throws: anything that is not exactly one of the known
// shapes is "unknown".

import { escapeText } from '../ssh/escape';
import { WireReader } from '../ssh/wire';

/** RFC 4252 §6: SSH_MSG_USERAUTH_REQUEST. */
const SSH_MSG_USERAUTH_REQUEST = 50;
/** RFC 4252 §7. */
const PUBLICKEY = 'publickey';
/** OpenSSH PROTOCOL §3.1: a publickey request that also names the server's host key. */
const PUBLICKEY_HOSTBOUND = 'publickey-hostbound-v00@openssh.com';
/** PROTOCOL.sshsig: the 6-byte preamble of the data that is signed. */
const SSHSIG_MAGIC = Buffer.from('SSHSIG', 'latin1');
/** PROTOCOL.sshsig: the hash algorithms a signature may use, with their output sizes. */
const SSHSIG_HASH_LENGTH: Record<string, number> = { sha256: 32, sha512: 64 };

export type UserauthMethod = typeof PUBLICKEY | typeof PUBLICKEY_HOSTBOUND;

export interface LoginData {
  kind: 'login';
  method: UserauthMethod;
  user: string;
  service: string;
  /** The signature algorithm ssh asked for (e.g. rsa-sha2-512 for an ssh-rsa key). */
  algorithm: string;
  keyBlob: Buffer;
  sessionId: Buffer;
  /** The server's host key, only in publickey-hostbound requests. */
  hostKey?: Buffer;
}

export interface SshsigData {
  kind: 'sshsig';
  namespace: string;
  hashAlgorithm: string;
  hash: Buffer;
}

export interface UnknownData {
  kind: 'unknown';
  length: number;
}

export type SignedData = LoginData | SshsigData | UnknownData;

/**
 * A string field as text (OpenSSH's cstring): valid UTF-8 without NUL, else
 * null. Byte-exact: a leading U+FEFF stays part of the text.
 */
function cstring(b: Buffer): string | null {
  if (b.includes(0)) return null;
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? s : null;
}

/**
 * The key type a key type or signature algorithm name stands for, as
 * sshkey_type_from_name() compares them: RFC 8332's rsa-sha2-256/512 sign
 * with ssh-rsa keys, and one ECDSA type covers every curve (the key blob
 * comparison checks the curve).
 */
function keyFamily(name: string): string {
  return name.replace(/^rsa-sha2-(256|512)/, 'ssh-rsa').replace(/^ecdsa-sha2-nistp\d+/, 'ecdsa');
}

/**
 * RFC 4252 §7, the data a publickey signature covers:
 *   string session id, byte 50, string user, string service, string method,
 *   boolean TRUE, string algorithm, string key blob [, string host key (hostbound)]
 * with the checks of OpenSSH's ssh-agent.c parse_userauth_request: a
 * non-empty session id, message 50, "ssh-connection", has-signature TRUE,
 * an algorithm of the key's type, the key blob the one asked to sign with
 * (when `keyBlob` is given), a host key for publickey-hostbound (PROTOCOL
 * §3.1), no other method, and nothing after the end.
 */
function decodeLogin(data: Buffer, keyBlob?: Buffer): LoginData | null {
  // Most data is not a login: say so without throwing (a WireError's stack is
  // most of what a signature of other data would cost here).
  if (data.length < 5) return null;
  const sidLength = data.readUInt32BE(0);
  if (sidLength + 4 >= data.length || data[sidLength + 4] !== SSH_MSG_USERAUTH_REQUEST) return null;
  const r = new WireReader(data);
  const sessionId = r.string();
  if (sessionId.length === 0) return null;
  if (r.byte() !== SSH_MSG_USERAUTH_REQUEST) return null;
  const user = cstring(r.string());
  const service = cstring(r.string());
  const method = cstring(r.string());
  if (r.byte() !== 1) return null; // has-signature: the request is signed
  const algorithm = cstring(r.string());
  const key = r.string();
  if (user === null || algorithm === null || service !== 'ssh-connection') return null;
  if (keyBlob && !key.equals(keyBlob)) return null;
  // The key blob's own type name (an empty or malformed blob throws: not a login).
  if (keyFamily(algorithm) !== keyFamily(new WireReader(key).text())) return null;
  let hostKey: Buffer | undefined;
  if (method === PUBLICKEY_HOSTBOUND) {
    hostKey = Buffer.from(r.string());
    if (hostKey.length === 0) return null;
  } else if (method !== PUBLICKEY) return null;
  if (r.remaining !== 0) return null;
  const out: LoginData = {
    kind: 'login',
    method,
    user,
    service,
    algorithm,
    keyBlob: Buffer.from(key),
    sessionId: Buffer.from(sessionId),
  };
  if (hostKey) out.hostKey = hostKey;
  return out;
}

/** The fields of PROTOCOL.sshsig's signed data, undecoded. */
interface SshsigFields {
  namespace: Buffer;
  hashAlgorithm: Buffer;
  hash: Buffer;
}

/**
 * PROTOCOL.sshsig §"Signed Data": byte[6] "SSHSIG", string namespace,
 * string reserved, string hash_algorithm, string H(message), and no more;
 * null if the bytes are not laid out so.
 */
function readSshsig(data: Buffer): SshsigFields | null {
  if (data.length < SSHSIG_MAGIC.length || !data.subarray(0, 6).equals(SSHSIG_MAGIC)) return null;
  try {
    const r = new WireReader(data.subarray(SSHSIG_MAGIC.length));
    const namespace = r.string();
    r.string(); // reserved: ignored by every verifier, so it changes nothing we show
    const hashAlgorithm = r.string();
    const hash = r.string();
    return r.remaining === 0 ? { namespace, hashAlgorithm, hash } : null;
  } catch {
    return null; // a WireError from a truncated field
  }
}

/**
 * Is `data` laid out as SSHSIG signed data (ssh-agent.c parse_sshsig_request,
 * for the websafe rule), whatever its namespace and hash say?
 */
export function hasSshsigLayout(data: Buffer): boolean {
  return readSshsig(data) !== null;
}

/** SSHSIG signed data whose namespace and hash algorithm are text, and whose hash fits its algorithm. */
function decodeSshsig(data: Buffer): SshsigData | null {
  const f = readSshsig(data);
  if (!f) return null;
  const namespace = cstring(f.namespace);
  const hashAlgorithm = cstring(f.hashAlgorithm);
  if (namespace === null || hashAlgorithm === null) return null;
  const want = SSHSIG_HASH_LENGTH[hashAlgorithm];
  if (want === undefined || f.hash.length !== want) return null;
  return { kind: 'sshsig', namespace, hashAlgorithm, hash: Buffer.from(f.hash) };
}

/**
 * What `data` (a SIGN_REQUEST's data field) is. When `keyBlob` is given, a
 * userauth request must name that key (as ssh-agent.c requires); one that
 * names another key is not a login.
 */
export function decodeSignedData(data: Buffer, keyBlob?: Buffer): SignedData {
  try {
    const sig = decodeSshsig(data);
    if (sig) return sig;
    const login = decodeLogin(data, keyBlob);
    if (login) return login;
  } catch {
    // A WireError from a truncated field: not one of ours.
  }
  return { kind: 'unknown', length: data.length };
}

/** The destination of a login as the caller established it (hardening issue: verified or not). */
export interface LoginDestination {
  /** A host name (from known_hosts) or a host key fingerprint. */
  host: string;
  /** True only when the data's session id is the last bind's and the host key is known. */
  verified: boolean;
}

/** The SSHSIG namespaces people know by what uses them. */
function sshsigWhat(namespace: string): string {
  if (namespace === 'git') return 'a git commit or tag';
  if (namespace === 'file') return 'a file';
  if (namespace === '') return 'data with an empty namespace';
  return `${escapeText(namespace)} data`;
}

/**
 * One line for the confirm prompt and the audit record: what the signature is
 * for. Everything that came from the request (user, namespace, host) is escaped.
 */
export function describeSignedData(d: SignedData, destination?: LoginDestination): string {
  switch (d.kind) {
    case 'login': {
      const user = escapeText(d.user);
      if (!destination) return `log in as ${user} to an unverified host`;
      const host = escapeText(destination.host);
      return `log in as ${user} to ${host}${destination.verified ? '' : ' (unverified)'}`;
    }
    case 'sshsig':
      return `sign ${sshsigWhat(d.namespace)} (namespace ${escapeText(d.namespace)})`;
    case 'unknown':
      return `sign ${d.length} ${d.length === 1 ? 'byte' : 'bytes'} of unrecognised data`;
  }
}
