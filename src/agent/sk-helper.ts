// Signing with a security key through OpenSSH's ssh-sk-helper, as
// ssh-agent does (ssh-sk-client.c sshsk_sign / client_converse): one helper
// process per signature, which loads the provider (middleware), asks the
// device and answers with the SSH signature blob, which is passed through.
//
// Request (ssh-sk-client.c, SSH_SK_HELPER_VERSION 5 in OpenSSH 8.9 to 10.x):
//   framed: byte version=5, uint32 SSH_SK_HELPER_SIGN, byte log_on_stderr,
//           uint32 log_level, string private key (sshkey_private_serialize),
//           string provider, string data, string alg (""), uint32 compat,
//           string pin ("" for none)
// Reply: byte version, uint32 SSH_SK_HELPER_SIGN + string signature,
//        or uint32 SSH_SK_HELPER_ERROR + uint32 -error (ssherr.h).

import { SkPrivateKey, encodeSkPrivateKey } from '../ssh/sk-key';
import { WireError, WireReader, WireWriter } from '../ssh/wire';
import { HelperProcess, HelperResult, fail } from './helper-process';

export const SSH_SK_HELPER_VERSION = 5;
const SSH_SK_HELPER_ERROR = 0;
const SSH_SK_HELPER_SIGN = 1;
/** log.h SYSLOG_LEVEL_ERROR: the helper reports only real errors, on stderr. */
const LOG_LEVEL_ERROR = 2;

export const DEFAULT_SK_HELPER = '/usr/lib/openssh/ssh-sk-helper';
/** A touch can take a while; a helper stuck longer than this is killed. */
export const DEFAULT_SK_TIMEOUT_MS = 60_000;

/** ssh-sk-client.c start_helper: $SSH_SK_HELPER if set and non-empty. */
export function skHelperPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.SSH_SK_HELPER || DEFAULT_SK_HELPER;
}

/** ssherr.h codes the sk path produces (ssh-sk.c skerr_to_ssherr), for messages. */
const SSH_ERRORS: Record<number, string> = {
  [-1]: 'internal error',
  [-4]: 'invalid format',
  [-10]: 'invalid argument',
  [-21]: 'incorrect signature',
  [-24]: 'system error',
  [-43]: 'incorrect passphrase or PIN',
  [-44]: 'bad permissions',
  [-46]: 'key not found',
  [-59]: 'feature not supported',
  [-60]: 'device not found',
};
const SSH_ERR_KEY_WRONG_PASSPHRASE = -43;

export interface SkSignOptions {
  /** The helper binary; default skHelperPath(). */
  helper?: string;
  timeoutMs?: number;
  /** The helper's environment; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** A PIN for keys that need user verification; never logged. */
  pin?: string;
}

function sshErrorText(code: number): string {
  return SSH_ERRORS[code] ?? `error ${code}`;
}

/** Parses the helper's reply (client_converse + sshsk_sign's checks). */
function parseReply(reply: Buffer): HelperResult<Buffer> {
  try {
    const r = new WireReader(reply);
    const version = r.byte();
    if (version !== SSH_SK_HELPER_VERSION)
      return fail(
        'protocol',
        `ssh-sk-helper speaks version ${version}, expected ${SSH_SK_HELPER_VERSION}`,
      );
    const type = r.uint32();
    if (type === SSH_SK_HELPER_ERROR) {
      const rerr = r.uint32();
      const code = rerr === 0 || rerr >= 0x7fffffff ? -1 : -rerr;
      const kind = code === SSH_ERR_KEY_WRONG_PASSPHRASE ? 'wrong-pin' : 'provider';
      return fail(kind, `ssh-sk-helper: signing failed: ${sshErrorText(code)}`, code);
    }
    if (type !== SSH_SK_HELPER_SIGN)
      return fail(
        'protocol',
        `ssh-sk-helper answered message ${type}, expected ${SSH_SK_HELPER_SIGN}`,
      );
    const signature = Buffer.from(r.string());
    r.end();
    return { ok: true, value: signature };
  } catch (e) {
    if (e instanceof WireError)
      return fail('protocol', `ssh-sk-helper: malformed reply: ${e.message}`);
    throw e;
  }
}

/**
 * Signs `data` with the security key `key` through the provider `provider`
 * (a middleware path or "internal"). The result is the SSH signature blob,
 * unchanged, or a failure saying what went wrong.
 */
export async function skSign(
  key: SkPrivateKey,
  provider: string,
  data: Buffer,
  opts: SkSignOptions = {},
): Promise<HelperResult<Buffer>> {
  const path = opts.helper ?? skHelperPath(opts.env);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_SK_TIMEOUT_MS;
  const started = HelperProcess.start({ name: 'ssh-sk-helper', path, env: opts.env });
  if (!started.ok) return started;
  const helper = started.value;
  const pin = Buffer.from(opts.pin ?? '', 'utf8');
  const keyBlob = encodeSkPrivateKey(key);
  const payload = new WireWriter()
    .byte(SSH_SK_HELPER_VERSION)
    .uint32(SSH_SK_HELPER_SIGN)
    .bool(true) // log on stderr, so errors reach us and not syslog
    .uint32(LOG_LEVEL_ERROR)
    .string(keyBlob)
    .string(provider)
    .string(data)
    .string('') // alg: unused for sk keys (sshsk_sign passes NULL)
    .uint32(0) // compat
    .string(pin)
    .toBuffer();
  try {
    const reply = await helper.request(payload, timeoutMs, { wipe: [payload, pin], last: true });
    if (!reply.ok) return reply;
    const parsed = parseReply(reply.value);
    // reap_helper: a helper that answered but then failed is a failure too.
    const exit = await helper.finish(timeoutMs);
    if (!parsed.ok) {
      const said = helper.stderrSummary();
      return said
        ? fail(parsed.error.kind, `${parsed.error.message} (${said})`, parsed.error.code)
        : parsed;
    }
    return exit.ok ? parsed : exit;
  } finally {
    helper.kill();
    pin.fill(0);
  }
}
