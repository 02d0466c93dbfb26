// How one sign request is shown to the owner: the confirm prompt, and the
// record the audit log keeps of it.

import * as os from 'node:os';
import type { AuditRecord } from '../agent/audit';
import type { Entry, SignDetails } from '../agent/keyring';
import { nameForKey } from '../agent/known-hosts';
import { isForwarded } from '../agent/destination';
import { fingerprint } from '../ssh/fingerprint';
import { processCommand } from '../agent/peer';
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

/** The confirm prompt: OpenSSH's wording, plus who asked and through which hosts. */
export function confirmPrompt(
  entry: Entry,
  ctx: ConnectionContext,
  details: SignDetails,
  hash: 'sha256' | 'md5',
  knownHosts: KnownHostsCache,
): string {
  let p = `Allow use of key ${entry.comment.toString('utf8')}?\nKey fingerprint ${fingerprint(entry.key.publicBlob, hash)}.`;
  if (details.user) p += `\nPublic key authentication request for user "${details.user}".`;
  if (ctx.peer) {
    const cmd = processCommand(ctx.peer.pid);
    p += `\nRequested by pid ${ctx.peer.pid}${cmd ? ` (${cmd})` : ''}, uid ${ctx.peer.uid}.`;
  }
  const hops = hopChain(ctx, details, knownHosts);
  if (hops.length > 0)
    p += `\n${details.forwarded ? 'Forwarded' : 'Login'}: ${hops.join(' \u2192 ')}.`;
  // A security key then waits for a touch, which nothing else on screen asks for.
  if (entry.key.algorithm === 'device' && entry.key.needsTouch)
    p += '\nIf allowed, touch your security key.';
  return p;
}

/** The audit record of one sign request. */
export function auditRecord(ev: SignEvent, knownHosts: KnownHostsCache): AuditRecord {
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
    decision: result.ok ? 'allowed' : 'refused',
    reason: result.ok
      ? undefined
      : result.detail
        ? `${result.reason}: ${result.detail}`
        : result.reason,
  };
}
