// OpenSSH's "restrict-websafe" rule (ssh-agent.c check_websafe_message_contents,
// on unless -O no-restrict-websafe): a security key whose application is not
// "ssh:…" belongs to a web origin, so the agent signs only data that cannot be
// a WebAuthn assertion: an SSH login or an SSHSIG signature.

import { WireReader } from '../ssh/wire';
import { parseUserauthRequest } from './destination';

/** PROTOCOL.sshsig: the data signed starts with this magic, then namespace, reserved, hash, H(message). */
function isSshsigRequest(data: Buffer): boolean {
  if (data.length < 6 || data.subarray(0, 6).toString('latin1') !== 'SSHSIG') return false;
  try {
    const r = new WireReader(data.subarray(6));
    r.string(); // namespace
    r.string(); // reserved
    r.string(); // hash algorithm
    r.string(); // H(message)
    r.end();
    return true;
  } catch {
    return false;
  }
}

/** May a key with `application` sign `data`? (`keyBlob`: the identity asked for.) */
export function websafeAllows(application: string, keyBlob: Buffer, data: Buffer): boolean {
  if (application.startsWith('ssh:')) return true;
  return parseUserauthRequest(data, keyBlob) !== null || isSshsigRequest(data);
}
