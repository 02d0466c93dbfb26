// OpenSSH's "restrict-websafe" rule (ssh-agent.c check_websafe_message_contents,
// on unless -O no-restrict-websafe): a security key whose application is not
// "ssh:…" belongs to a web origin, so the agent signs only data that cannot be
// a WebAuthn assertion: an SSH login or an SSHSIG signature.

import { decodeSignedData, hasSshsigLayout } from './signed-data';

/** May a key with `application` sign `data`? (`keyBlob`: the identity asked for.) */
export function websafeAllows(application: string, keyBlob: Buffer, data: Buffer): boolean {
  if (application.startsWith('ssh:')) return true;
  // A userauth request for this key (parse_userauth_request), or anything laid
  // out as SSHSIG signed data (parse_sshsig_request, which checks no hash).
  return decodeSignedData(data, keyBlob).kind === 'login' || hasSshsigLayout(data);
}
