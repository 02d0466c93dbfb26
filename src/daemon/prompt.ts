// How one sign request is shown to the owner: the confirm prompt, and the
// record the audit log keeps of it.

import * as os from 'node:os';
import type { AuditRecord } from '../agent/audit';
import type { Entry, SignDetails } from '../agent/keyring';
import { nameForKey } from '../agent/known-hosts';
import { isForwarded } from '../agent/destination';
import { fingerprint } from '../ssh/fingerprint';
import { processCommand } from '../agent/peer';
import { describeSignedData, LoginDestination } from '../agent/signed-data';
import type { ConnectionContext, SignEvent } from '../agent/server';
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
  if (ctx.binds.length === 0) return [];
  const known = knownHosts.get();
  return [
    os.hostname(),
    ...ctx.binds.map(
      (b, i) => details.hosts[i] ?? nameForKey(known, b.hostKey) ?? fingerprint(b.hostKey),
    ),
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

/** The confirm prompt: OpenSSH's wording, plus who asked and through which hosts. */
export function confirmPrompt(
  entry: Entry,
  ctx: ConnectionContext,
  details: SignDetails,
  hash: 'sha256' | 'md5',
  knownHosts: KnownHostsCache,
): string {
  let p = `Allow use of key ${entry.comment.toString('utf8')}?\nKey fingerprint ${fingerprint(entry.key.publicBlob, hash)}.`;
  const purpose = signedPurpose(ctx, details, knownHosts);
  if (purpose) p += `\nTo ${purpose}.`;
  else if (details.user) p += `\nPublic key authentication request for user "${details.user}".`;
  if (ctx.peer) {
    const cmd = processCommand(ctx.peer.pid);
    p += `\nRequested by pid ${ctx.peer.pid}${cmd ? ` (${cmd})` : ''}, uid ${ctx.peer.uid}.`;
  }
  const hops = hopChain(ctx, details, knownHosts);
  if (hops.length > 0)
    p += `\n${details.forwarded ? 'Forwarded' : 'Login'}: ${hops.join(' \u2192 ')}.`;
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
      command: ctx.peer ? processCommand(ctx.peer.pid) : undefined,
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
