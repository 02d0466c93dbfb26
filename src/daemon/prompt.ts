// How one sign request is shown to the owner: the confirm prompt, and the
// record the audit log keeps of it.

import os = require('node:os');
import type { AuditRecord } from '../agent/audit';
import type { Entry, SignDetails } from '../agent/keyring';
import { nameForKey } from '../agent/known-hosts';
import { isForwarded } from '../agent/destination';
import { fingerprint } from '../ssh/fingerprint';
import { processCommand } from '../agent/peer';
import { describeSignedData, LoginDestination } from '../agent/signed-data';
import { escapeText } from '../ssh/escape';
import type { ConnectionContext, RefusedChangeEvent, SignEvent } from '../agent/server';
import type { KnownHostsCache } from './known-hosts-cache';

/**
 * The hosts a request passed through, this one first: `sparrow → goober → boomer`.
 * Names come from the matching destination constraint, else known_hosts, else
 * the host key's fingerprint.
 */
export function hopChain(
  ctx: ConnectionContext,
  details: SignDetails,
  knownHosts: KnownHostsCache,
): string[] {
  return namedHops(ctx, details, knownHosts).map((h) => h.name);
}

/** Each hop's name, and whether it is a name (not only a fingerprint). */
function namedHops(
  ctx: ConnectionContext,
  details: SignDetails,
  knownHosts: KnownHostsCache,
): { name: string; known: boolean }[] {
  if (ctx.binds.length === 0) return [];
  const known = knownHosts.get();
  return [
    { name: os.hostname(), known: true },
    ...ctx.binds.map((b, i) => {
      const name = details.hosts[i] ?? nameForKey(known, b.hostKey);
      return name === undefined
        ? { name: fingerprint(b.hostKey), known: false }
        : { name, known: true };
    }),
  ];
}

/**
 * Where a login goes: the last bind's host (issue 14), named as in hopChain;
 * verified only when the data belongs to that bound session and the host is
 * known (a destination constraint or known_hosts names it), as issue 11 asks.
 */
function loginDestination(
  ctx: ConnectionContext,
  details: SignDetails,
  knownHosts: KnownHostsCache,
): LoginDestination | undefined {
  const i = ctx.binds.length - 1;
  if (i < 0) return undefined;
  const hostKey = ctx.binds[i].hostKey;
  const name = details.hosts[i] ?? nameForKey(knownHosts.get(), hostKey);
  return { host: name ?? fingerprint(hostKey), verified: details.verified && name !== undefined };
}

/** What the signature is for, in words ("log in as alice to example.org"), escaped. */
export function signedPurpose(
  ctx: ConnectionContext,
  details: SignDetails,
  knownHosts: KnownHostsCache,
): string | undefined {
  const d = details.signed;
  if (!d) return undefined;
  return describeSignedData(
    d,
    d.kind === 'login' ? loginDestination(ctx, details, knownHosts) : undefined,
  );
}

/**
 * The confirm prompt: OpenSSH's wording, plus who asked and through which
 * hosts. Every string from the request, the key or the process is escaped;
 * the host chain reads as checked only when the signed data belongs to the
 * session last bound (details.verified) and every host key has a name.
 */
export function confirmPrompt(
  entry: Entry,
  ctx: ConnectionContext,
  details: SignDetails,
  hash: 'sha256' | 'md5',
  knownHosts: KnownHostsCache,
): string {
  const e = escapeText;
  let p = `Allow use of key ${e(entry.comment)}?\nKey fingerprint ${fingerprint(entry.key.publicBlob, hash)}.`;
  const purpose = signedPurpose(ctx, details, knownHosts);
  if (purpose) p += `\nTo ${purpose}.`;
  else if (details.user) p += `\nPublic key authentication request for user "${e(details.user)}".`;
  if (ctx.peer) {
    // Read at accept time where the server does; the process may have rewritten it since.
    const peer = ctx.peer;
    const cmd = peerCommand(peer);
    p += `\nRequested by pid ${peer.pid}${cmd ? ` (self-reported command: ${e(cmd)})` : ''}, uid ${peer.uid}.`;
  }
  const hops = namedHops(ctx, details, knownHosts);
  if (hops.length > 0) {
    const chain = hops.map((h) => e(h.name)).join(' \u2192 ');
    const kind = details.forwarded ? 'Forwarded' : 'Login';
    const verified = details.verified && hops.every((h) => h.known);
    p += verified ? `\n${kind}: ${chain}.` : `\n${kind}, destination unverified: ${chain}.`;
  }
  // A security key then waits for a touch, which nothing else on screen asks for.
  if (entry.key.algorithm === 'device' && entry.key.needsTouch)
    p += '\nIf allowed, touch your security key.';
  return p;
}

/** The audit record of one sign request; `approval`: the window it rode on, without a prompt. */
export function auditRecord(
  ev: SignEvent,
  knownHosts: KnownHostsCache,
  approval?: number,
): AuditRecord {
  const { ctx, result } = ev;
  const details: SignDetails = result.details ?? {
    hosts: [],
    forwarded: isForwarded(ctx),
    verified: false,
  };
  return {
    time: new Date().toISOString(),
    key: fingerprint(result.entry?.key.publicBlob ?? ev.keyBlob),
    comment: result.entry?.comment.toString('utf8') ?? '',
    requester: {
      pid: ctx.peer?.pid,
      uid: ctx.peer?.uid,
      command: ctx.peer ? peerCommand(ctx.peer) : undefined,
    },
    hops: hopChain(ctx, details, knownHosts),
    forwarded: details.forwarded,
    user: details.user,
    purpose: signedPurpose(ctx, details, knownHosts),
    approval,
    decision: result.ok ? 'allowed' : 'refused',
    reason: result.ok
      ? undefined
      : result.detail
        ? `${result.reason}: ${result.detail}`
        : result.reason,
  };
}

/** The audit record of a change refused because it came from a forwarded connection. */
export function refusedChangeRecord(
  ev: RefusedChangeEvent,
  knownHosts: KnownHostsCache,
): AuditRecord {
  const { ctx } = ev;
  return {
    time: new Date().toISOString(),
    request: ev.request,
    key: ev.keyBlob ? fingerprint(ev.keyBlob) : '',
    comment: '',
    requester: { pid: ctx.peer?.pid, uid: ctx.peer?.uid, command: ctx.peer?.command },
    hops: hopChain(ctx, { hosts: [], forwarded: true, verified: false }, knownHosts),
    forwarded: true,
    decision: 'refused',
    reason: 'change from a forwarded connection',
  };
}

/** The peer's command line as read at accept time (ctx.peer.command), else now. */
function peerCommand(peer: NonNullable<ConnectionContext['peer']>): string {
  return peer.command ?? processCommand(peer.pid);
}
