// PKCS#11 tokens through OpenSSH's ssh-pkcs11-helper, as ssh-agent does
// (ssh-pkcs11-client.c): one long-lived helper per provider, speaking agent
// messages framed as uint32 length + payload on its stdin/stdout.
//
// OpenSSH 9.2's helper (ssh-pkcs11-helper.c 1.26):
//   ADD_SMARTCARD_KEY(string provider, string pin)
//     → IDENTITIES_ANSWER(uint32 n, n × (string key blob, string label))
//     | FAILURE(uint32 -error)             (ssh-pkcs11.h SSH_PKCS11_ERR_*)
//   SIGN_REQUEST(string key blob, string data, uint32 flags, ignored)
//     → SIGN_RESPONSE(string raw signature) | FAILURE
// The signature is raw, not SSH: RSA_private_encrypt with PKCS#1 padding of
// `data` (so the client sends the DigestInfo), or ECDSA_sign of the digest
// (DER). The client hashes and wraps, as OpenSSL does around the helper in
// ssh-pkcs11-client.c rsa_encrypt / ecdsa_do_sign.

import crypto = require('node:crypto');
import { WireError, WireReader, WireWriter } from '../ssh/wire';
import { HelperProcess, HelperResult, fail } from './helper-process';

// The helper answers a failed add with SSH_AGENT_FAILURE (5) and a failed sign
// with SSH2_AGENT_FAILURE (30) (ssh-pkcs11-helper.c process_add / process_sign).
const SSH_AGENT_FAILURE = 5;
const SSH2_AGENT_FAILURE = 30;
const isFailure = (type: number) => type === SSH_AGENT_FAILURE || type === SSH2_AGENT_FAILURE;
const SSH2_AGENT_IDENTITIES_ANSWER = 12;
const SSH2_AGENTC_SIGN_REQUEST = 13;
const SSH2_AGENT_SIGN_RESPONSE = 14;
const SSH_AGENTC_ADD_SMARTCARD_KEY = 20;
const SSH_AGENTC_REMOVE_SMARTCARD_KEY = 21;
/** PROTOCOL.agent: RSA signature flags. */
export const SSH_AGENT_RSA_SHA2_256 = 2;
export const SSH_AGENT_RSA_SHA2_512 = 4;

export const DEFAULT_PKCS11_HELPER = '/usr/lib/openssh/ssh-pkcs11-helper';
export const DEFAULT_PKCS11_TIMEOUT_MS = 30_000;

/** ssh-pkcs11-client.c pkcs11_start_helper: $SSH_PKCS11_HELPER if set and non-empty. */
export function pkcs11HelperPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.SSH_PKCS11_HELPER || DEFAULT_PKCS11_HELPER;
}

/** ssh-pkcs11.h: why pkcs11_add_provider failed. */
const PKCS11_ERRORS: Record<number, string> = {
  0: 'no keys found on the token',
  1: 'provider failed',
  2: 'login failed (wrong PIN?)',
  3: 'no slots',
  4: 'PIN required',
  5: 'PIN locked',
};
const SSH_PKCS11_ERR_LOGIN_FAIL = 2;

export interface Pkcs11Key {
  /** The SSH public key blob (ssh-rsa or ecdsa-sha2-*). */
  blob: Buffer;
  /** The token's label for it (the comment). */
  label: string;
}

export interface Pkcs11Options {
  helper?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

// DigestInfo prefixes (RFC 8017 §9.2 note 1).
const DIGEST_INFO: Record<string, Buffer> = {
  sha1: Buffer.from('3021300906052b0e03021a05000414', 'hex'),
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

const EC_HASH: Record<string, { hash: string; crv: string; size: number }> = {
  nistp256: { hash: 'sha256', crv: 'P-256', size: 32 },
  nistp384: { hash: 'sha384', crv: 'P-384', size: 48 },
  nistp521: { hash: 'sha512', crv: 'P-521', size: 66 },
};

type TokenKey =
  | { kind: 'rsa'; pub: crypto.KeyObject; modulusBytes: number }
  | { kind: 'ecdsa'; type: string; pub: crypto.KeyObject; hash: string; size: number };

/** The public key of a blob the helper gave us (only RSA and ECDSA: what 9.2's helper signs). */
function tokenKey(blob: Buffer): TokenKey {
  const r = new WireReader(blob);
  const type = r.text();
  if (type === 'ssh-rsa') {
    const e = r.mpint();
    const n = r.mpint();
    r.end();
    const jwk = { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') };
    return {
      kind: 'rsa',
      pub: crypto.createPublicKey({ key: jwk, format: 'jwk' }),
      modulusBytes: n.length,
    };
  }
  const curve = type.startsWith('ecdsa-sha2-') ? r.text() : '';
  const ec = EC_HASH[curve];
  if (!ec || type !== `ecdsa-sha2-${curve}`)
    throw new WireError(`token key type ${type} not supported`);
  const q = r.string();
  r.end();
  if (q.length !== 1 + 2 * ec.size || q[0] !== 4) throw new WireError('bad ECDSA point');
  const jwk = {
    kty: 'EC',
    crv: ec.crv,
    x: q.subarray(1, 1 + ec.size).toString('base64url'),
    y: q.subarray(1 + ec.size).toString('base64url'),
  };
  return { kind: 'ecdsa', type, pub: crypto.createPublicKey({ key: jwk, format: 'jwk' }), ...ec };
}

/** ssh-agent.c agent_decode_alg: SHA2-256 wins when both flags are set. */
function rsaAlgorithm(flags: number): { name: string; hash: string } {
  if (flags & SSH_AGENT_RSA_SHA2_256) return { name: 'rsa-sha2-256', hash: 'sha256' };
  if (flags & SSH_AGENT_RSA_SHA2_512) return { name: 'rsa-sha2-512', hash: 'sha512' };
  return { name: 'ssh-rsa', hash: 'sha1' };
}

/** DER ECDSA-Sig-Value → [r, s] magnitudes (strict: definite short lengths, no trailing bytes). */
function derEcdsaSignature(der: Buffer): [Buffer, Buffer] {
  let off = 0;
  const take = (tag: number): Buffer => {
    if (der[off] !== tag) throw new WireError('bad DER ECDSA signature');
    let len = der[off + 1];
    off += 2;
    if (len === 0x81) len = der[off++];
    else if (len > 0x7f) throw new WireError('bad DER length');
    if (off + len > der.length) throw new WireError('truncated DER ECDSA signature');
    const v = der.subarray(off, off + len);
    off += len;
    return v;
  };
  const seq = take(0x30);
  if (off !== der.length) throw new WireError('trailing bytes after DER signature');
  der = seq;
  off = 0;
  const r = take(0x02);
  const s = take(0x02);
  if (off !== der.length) throw new WireError('trailing bytes in DER signature');
  const strip = (b: Buffer) => (b.length > 1 && b[0] === 0 ? b.subarray(1) : b);
  return [strip(r), strip(s)];
}

/** A provider loaded into its own ssh-pkcs11-helper. */
export class Pkcs11Provider {
  private constructor(
    readonly provider: string,
    private readonly helper: HelperProcess,
    readonly keys: Pkcs11Key[],
    private readonly timeoutMs: number,
  ) {}

  /** Resolves when the helper has gone (exited, died, killed). */
  get exited(): Promise<void> {
    return this.helper.exited;
  }

  get running(): boolean {
    return this.helper.running;
  }

  /** The helper's process id (for tests and the debug log). */
  get pid(): number | undefined {
    return this.helper.pid;
  }

  /** Starts a helper for `provider` and logs in with `pin` ("" for none); the PIN buffer is wiped. */
  static async load(
    provider: string,
    pin: Buffer,
    opts: Pkcs11Options = {},
  ): Promise<HelperResult<Pkcs11Provider>> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_PKCS11_TIMEOUT_MS;
    const started = HelperProcess.start({
      name: 'ssh-pkcs11-helper',
      path: opts.helper ?? pkcs11HelperPath(opts.env),
      // -v: errors (C_Login failed) come to us on stderr instead of syslog.
      args: ['-v'],
      env: opts.env,
    });
    if (!started.ok) {
      pin.fill(0);
      return started;
    }
    const helper = started.value;
    const payload = new WireWriter()
      .byte(SSH_AGENTC_ADD_SMARTCARD_KEY)
      .string(provider)
      .string(pin)
      .toBuffer();
    const reply = await helper.request(payload, timeoutMs, { wipe: [payload, pin] });
    const keys = reply.ok ? parseAddReply(reply.value) : reply;
    if (!keys.ok) {
      // Its exit flushes its log, which tells a wrong PIN from an empty token.
      await helper.finish(2000);
      return explainAddFailure(keys, helper.matchStderr(/C_Login failed: (\d+)/));
    }
    return { ok: true, value: new Pkcs11Provider(provider, helper, keys.value, timeoutMs) };
  }

  /** Signs `data` with the token key `blob` as an agent would: the SSH signature blob. */
  async sign(blob: Buffer, data: Buffer, flags: number): Promise<HelperResult<Buffer>> {
    if (!this.keys.some((k) => k.blob.equals(blob)))
      return fail('refused', 'not a key of this token');
    let key: TokenKey;
    try {
      key = tokenKey(blob);
    } catch (e) {
      return fail('protocol', `token key: ${(e as Error).message}`);
    }
    const alg = key.kind === 'rsa' ? rsaAlgorithm(flags) : { name: key.type, hash: key.hash };
    const digest = crypto.createHash(alg.hash).update(data).digest();
    const input = key.kind === 'rsa' ? Buffer.concat([DIGEST_INFO[alg.hash], digest]) : digest;
    const payload = new WireWriter()
      .byte(SSH2_AGENTC_SIGN_REQUEST)
      .string(blob)
      .string(input)
      .uint32(0)
      .toBuffer();
    const reply = await this.helper.request(payload, this.timeoutMs);
    if (!reply.ok) return reply;
    let sigBlob: Buffer;
    try {
      const r = new WireReader(reply.value);
      const type = r.byte();
      if (isFailure(type))
        return fail('provider', 'the token refused to sign (removed or logged out?)');
      if (type !== SSH2_AGENT_SIGN_RESPONSE)
        return fail('protocol', `ssh-pkcs11-helper answered message ${type}`);
      const raw = Buffer.from(r.string());
      r.end();
      sigBlob =
        key.kind === 'rsa'
          ? rsaSignature(alg.name, raw, key.modulusBytes)
          : ecdsaSignature(alg.name, raw);
    } catch (e) {
      if (e instanceof WireError)
        return fail('protocol', `ssh-pkcs11-helper: malformed signature: ${e.message}`);
      throw e;
    }
    // A token that returns garbage must not get a bad signature past us.
    if (!verifyTokenSignature(key, alg.hash, data, sigBlob))
      return fail('provider', 'the token returned a signature that does not verify');
    return { ok: true, value: sigBlob };
  }

  /** Unloads the provider: REMOVE_SMARTCARD_KEY, then the helper is stopped. */
  async unload(): Promise<void> {
    if (this.helper.running) {
      const payload = new WireWriter()
        .byte(SSH_AGENTC_REMOVE_SMARTCARD_KEY)
        .string(this.provider)
        .string('')
        .toBuffer();
      await this.helper.request(payload, Math.min(this.timeoutMs, 5000), { last: true });
    }
    await this.helper.finish(5000);
    this.helper.kill();
  }
}

// pkcs11.h: C_Login's refusals of the PIN.
const CKR_PIN_INCORRECT = 0xa0;
const CKR_PIN_LOCKED = 0xa4;
const CKR_PIN_REFUSED = new Set([CKR_PIN_INCORRECT, 0xa1 /* INVALID */, 0xa2 /* LEN_RANGE */]);

/**
 * OpenSSH 9.2's helper skips a slot whose login fails and so reports a wrong
 * PIN as "no keys" (pkcs11_register_provider); its log line "C_Login failed"
 * (it runs with -v) says which it was.
 */
function explainAddFailure(
  result: HelperResult<never>,
  login: RegExpMatchArray | null,
): HelperResult<never> {
  if (result.ok || result.error.code !== 0 || !login) return result;
  const rv = Number(login[1]);
  if (CKR_PIN_REFUSED.has(rv))
    return fail('wrong-pin', 'ssh-pkcs11-helper: login failed: wrong PIN', 0);
  if (rv === CKR_PIN_LOCKED)
    return fail('provider', 'ssh-pkcs11-helper: login failed: PIN locked', 0);
  return fail('provider', `ssh-pkcs11-helper: login failed (C_Login error ${rv})`, 0);
}

function parseAddReply(reply: Buffer): HelperResult<Pkcs11Key[]> {
  try {
    const r = new WireReader(reply);
    const type = r.byte();
    if (isFailure(type)) {
      const code = r.remaining >= 4 ? r.uint32() : 1;
      const kind = code === SSH_PKCS11_ERR_LOGIN_FAIL ? 'wrong-pin' : 'provider';
      return fail(kind, `ssh-pkcs11-helper: ${PKCS11_ERRORS[code] ?? `error ${code}`}`, code);
    }
    if (type !== SSH2_AGENT_IDENTITIES_ANSWER)
      return fail('protocol', `ssh-pkcs11-helper answered message ${type}`);
    const n = r.uint32();
    const keys: Pkcs11Key[] = [];
    for (let i = 0; i < n; i++) keys.push({ blob: Buffer.from(r.string()), label: r.text() });
    r.end();
    return { ok: true, value: keys };
  } catch (e) {
    if (e instanceof WireError)
      return fail('protocol', `ssh-pkcs11-helper: malformed key list: ${e.message}`);
    throw e;
  }
}

/** ssh-rsa.c ssh_rsa_sign: the signature is left-padded to the modulus length. */
function rsaSignature(alg: string, raw: Buffer, modulusBytes: number): Buffer {
  if (raw.length === 0 || raw.length > modulusBytes)
    throw new WireError('RSA signature of wrong length');
  const sig = Buffer.concat([Buffer.alloc(modulusBytes - raw.length), raw]);
  return new WireWriter().string(alg).string(sig).toBuffer();
}

function ecdsaSignature(alg: string, der: Buffer): Buffer {
  const [r, s] = derEcdsaSignature(der);
  return new WireWriter()
    .string(alg)
    .string(new WireWriter().mpint(r).mpint(s).toBuffer())
    .toBuffer();
}

function verifyTokenSignature(key: TokenKey, hash: string, data: Buffer, sigBlob: Buffer): boolean {
  const r = new WireReader(sigBlob);
  r.text();
  const sig = r.string();
  if (key.kind === 'rsa') return crypto.verify(hash, data, key.pub, sig);
  const inner = new WireReader(sig);
  const pad = (b: Buffer) => Buffer.concat([Buffer.alloc(Math.max(0, key.size - b.length)), b]);
  const p1363 = Buffer.concat([pad(inner.mpint()), pad(inner.mpint())]);
  return crypto.verify(hash, data, { key: key.pub, dsaEncoding: 'ieee-p1363' }, p1363);
}
