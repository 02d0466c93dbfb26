// Destination constraints (`ssh-add -h`, restrict-destination-v00@openssh.com)
// and the session binds they are checked against, following OpenSSH's
// ssh-agent.c: a constrained key may only authenticate along listed hops.

import {
  DestinationConstraint,
  Hop,
  KeySpec,
  MAX_HOST_LENGTH,
  MAX_USER_LENGTH,
} from './constraints';
import { CERT_TYPE, parseCertificate } from '../ssh/certificate';
import { matchPattern } from '../ssh/pattern';
import type { SignedData } from './signed-data';

/** One session-bind@openssh.com record: the host an ssh client on this connection talked to. */
export interface SessionBind {
  hostKey: Buffer;
  sessionId: Buffer;
  forwarded: boolean;
}

/** What a request's connection has told us about where it comes from. */
export interface BindState {
  binds: readonly SessionBind[];
  /** A bind was tried on this connection (even if it failed). */
  bindAttempted: boolean;
  /** A bind on this connection failed (bad signature, malformed, refused by the rules). */
  bindFailed?: boolean;
}

/** A connection's bind state with its defaults (no binds, none attempted). */
export function bindStateOf(ctx: Partial<BindState> | undefined): BindState {
  return {
    binds: ctx?.binds ?? [],
    bindAttempted: ctx?.bindAttempted ?? false,
    bindFailed: ctx?.bindFailed ?? false,
  };
}

/**
 * Does the connection count as forwarded, for every forwarding policy? Yes if
 * a bind says so, and also if any bind failed: a hostile server reached with
 * `ssh -A` can make the forwarded bind fail on purpose (issue 11 point 1), and
 * what is not verified cannot be trusted to be local. Only a connection whose
 * every bind verified and none is forwarded (ssh's own login) stays local.
 */
export function isForwarded(state: BindState): boolean {
  return (
    state.binds.some((b) => b.forwarded) ||
    !!state.bindFailed ||
    (state.bindAttempted && state.binds.length === 0)
  );
}

function matchKeyHop(key: Buffer, hop: Hop, now: bigint): boolean {
  const cert = parseCertificate(key);
  const hostname = hop.hostname ?? '(ORIGIN)';
  for (const spec of hop.keys) {
    if (!cert) {
      if (!spec.isCA && spec.key.equals(key)) return true;
      continue;
    }
    if (!spec.isCA || !cert.signatureKey.equals(spec.key)) continue;
    // A host certificate signed by the listed CA, naming this host, valid now.
    if (cert.type !== CERT_TYPE.HOST || cert.criticalOptions.length !== 0) continue;
    // Principals are patterns (sshkey_cert_check_host with wildcard principals, as
    // ssh-agent.c's match_key_hop asks); none at all names every host.
    if (cert.principals.length > 0 && !cert.principals.some((p) => matchPattern(hostname, p)))
      continue;
    if (now < cert.validAfter || now >= cert.validBefore) continue;
    return true;
  }
  return false;
}

/** A login user against a hop's user pattern; a name longer than any hop may name matches none. */
function userMatches(user: string, pattern: string): boolean {
  return Buffer.byteLength(user) <= MAX_USER_LENGTH && matchPattern(user, pattern);
}

/** The hostname of the first constraint that allows the hop fromKey → toKey for user, or undefined. */
function permittedHop(
  dests: readonly DestinationConstraint[],
  fromKey: Buffer | null,
  toKey: Buffer | null,
  user: string | null,
): string | null | undefined {
  const now = BigInt(Math.floor(Date.now() / 1000));
  for (const d of dests) {
    if (fromKey === null) {
      if (d.from.hostname !== null || d.from.keys.length !== 0) continue;
    } else if (!matchKeyHop(fromKey, d.from, now)) continue;
    if (toKey !== null && !matchKeyHop(toKey, d.to, now)) continue;
    if (d.to.user !== null && user !== null && !userMatches(user, d.to.user)) continue;
    return d.to.hostname;
  }
  return undefined;
}

export type Permission = { ok: true; hosts: (string | null)[] } | { ok: false; reason: string };

/**
 * May an identity with these constraints be used (seen, signed with, removed)
 * on a connection with these binds? `user` is given only for sign requests.
 * Mirrors OpenSSH's identity_permitted().
 */
export function identityPermitted(
  dests: readonly DestinationConstraint[],
  state: BindState,
  user: string | null,
): Permission {
  if (dests.length === 0) return { ok: true, hosts: [] };
  if (state.bindAttempted && state.binds.length === 0)
    return { ok: false, reason: 'previous session bind failed on this connection' };
  if (state.binds.length === 0) return { ok: true, hosts: [] }; // local use
  const hosts: (string | null)[] = [];
  let fromKey: Buffer | null = null;
  for (let i = 0; i < state.binds.length; i++) {
    const b = state.binds[i];
    const last = i === state.binds.length - 1;
    if (last && b.forwarded && user !== null)
      return { ok: false, reason: 'tried to sign on a forwarding hop' };
    if (!last && !b.forwarded)
      return { ok: false, reason: 'tried to forward through a signing bind' };
    const host = permittedHop(dests, fromKey, b.hostKey, last ? user : null);
    if (host === undefined) return { ok: false, reason: 'not permitted for this destination' };
    hosts.push(host);
    fromKey = b.hostKey;
  }
  // A key allowed *to* a forwarding host, but not beyond it, stays hidden there.
  const last = state.binds[state.binds.length - 1];
  if (
    last.forwarded &&
    user === null &&
    permittedHop(dests, last.hostKey, null, null) === undefined
  )
    return { ok: false, reason: 'permitted at this host but not beyond it' };
  return { ok: true, hosts };
}

/**
 * Is `signed` a login to the session this connection last bound (its session
 * id, and for publickey-hostbound its host key)? Only then is the host chain
 * the connection bound the destination of the signature; otherwise it is a claim.
 */
export function loginMatchesLastBind(state: BindState, signed: SignedData): boolean {
  const last = state.binds[state.binds.length - 1];
  if (signed.kind !== 'login' || !last || state.bindFailed) return false;
  if (!signed.sessionId.equals(last.sessionId)) return false;
  return signed.hostKey === undefined || signed.hostKey.equals(last.hostKey);
}

/**
 * The whole check for signing with a destination-constrained key (OpenSSH's
 * process_sign_request2): the data (decoded by decodeSignedData for the key
 * asked to sign with) must be a userauth request for the last bound session,
 * to a permitted host. Returns the hop hostnames or a reason.
 */
export function checkSignDestination(
  dests: readonly DestinationConstraint[],
  state: BindState,
  signed: SignedData,
): Permission {
  if (dests.length === 0) return { ok: true, hosts: [] };
  if (state.binds.length === 0)
    return { ok: false, reason: 'destination-constrained key used on an unbound connection' };
  if (signed.kind !== 'login')
    return {
      ok: false,
      reason: 'destination-constrained key asked to sign something other than a login',
    };
  const perm = identityPermitted(dests, state, signed.user);
  if (!perm.ok) return perm;
  // The session id must be the one ssh bound just before userauth.
  const last = state.binds[state.binds.length - 1];
  if (!signed.sessionId.equals(last.sessionId))
    return { ok: false, reason: 'session ID is not the one last bound' };
  // Past the first hop, only a publickey-hostbound request names the host it is for.
  if (state.binds.length > 1 && !signed.hostKey)
    return { ok: false, reason: 'no host key in the request on a forwarded connection' };
  if (signed.hostKey && !signed.hostKey.equals(last.hostKey))
    return { ok: false, reason: 'host key in the request is not the one last bound' };
  return perm;
}

/**
 * Destination constraints from `ssh-add -h`-style specs (`host`, `user@host`,
 * `from>to`), with host keys looked up by name (known_hosts). A host with no
 * known key yields a hop that matches nothing: never an unconstrained key.
 */
export function destinationsFromSpecs(
  specs: readonly string[],
  lookup: (host: string) => KeySpec[],
): DestinationConstraint[] {
  const hop = (text: string, allowUser: boolean): Hop => {
    const at = text.lastIndexOf('@');
    const user = at > 0 ? text.slice(0, at) : null;
    if (user && !allowUser) throw new Error(`"${text}": a user is only allowed on the last hop`);
    const hostname = at > 0 ? text.slice(at + 1) : text;
    if (!hostname) throw new Error(`empty host name in "${text}"`);
    if (user && Buffer.byteLength(user) > MAX_USER_LENGTH)
      throw new Error(`"${text}": the user name is over ${MAX_USER_LENGTH} bytes`);
    if (Buffer.byteLength(hostname) > MAX_HOST_LENGTH)
      throw new Error(`"${text}": the host name is over ${MAX_HOST_LENGTH} bytes`);
    return { user, hostname, keys: lookup(hostname) };
  };
  return specs.map((spec) => {
    const parts = spec.split('>');
    if (parts.length > 2) throw new Error(`"${spec}": use one "from>to" pair per constraint`);
    const to = hop(parts[parts.length - 1], true);
    const from: Hop =
      parts.length === 2 ? hop(parts[0], false) : { user: null, hostname: null, keys: [] };
    return { from, to };
  });
}
