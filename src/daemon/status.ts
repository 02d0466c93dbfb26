// What `tsagent status` is told about the running agent.

import type { Hop } from '../agent/constraints';
import type { Keyring } from '../agent/keyring';
import { fingerprint } from '../ssh/fingerprint';
import type { ConnectionContext } from '../agent/server';
import type { OpenApproval } from '../agent/approvals';
import type { HostRecord } from '../agent/host-order';
import { nameForKey } from '../agent/known-hosts';
import { escapeText } from '../ssh/escape';
import type { AgentStatus, StatusApproval, StatusHost } from './control-protocol';
import type { KnownHostsCache } from './known-hosts-cache';
import type { RefusedChanges } from './refused-changes';
import type { VaultBridge } from './vault-bridge';

function hopText(h: Hop): string {
  return (h.user ? `${h.user}@` : '') + (h.hostname ?? '');
}

/** An approval window's destination in words: the login's host, or the kind of data. */
function approvalText(destination: string, knownHosts?: KnownHostsCache): string {
  if (destination.startsWith('login:')) {
    const hostKey = Buffer.from(destination.slice('login:'.length), 'base64');
    const name = knownHosts && nameForKey(knownHosts.get(), hostKey);
    return `logins to ${escapeText(name ?? fingerprint(hostKey))}`;
  }
  if (destination.startsWith('sshsig:'))
    return `${escapeText(destination.slice('sshsig:'.length))} signatures`;
  return 'unrecognised data';
}

function statusApproval(a: OpenApproval, knownHosts?: KnownHostsCache): StatusApproval {
  return {
    key: fingerprint(a.key),
    destination: approvalText(a.destination, knownHosts),
    session: a.session,
    forwarded: a.forwarded,
    remaining: Math.ceil(a.remainingMs / 1000),
    uses: a.uses,
  };
}

/** A learned host as status shows it: named from known_hosts where known. */
export function statusHost(r: HostRecord, knownHosts?: KnownHostsCache): StatusHost {
  const name = knownHosts && nameForKey(knownHosts.get(), r.hostKey);
  return {
    host: escapeText(name ?? fingerprint(r.hostKey)),
    hostKey: fingerprint(r.hostKey),
    key: r.learnedKey ? fingerprint(r.learnedKey) : null,
    failures: r.failures,
  };
}

/** The agent's state; nothing about keys while locked. */
export function agentStatus(
  keyring: Keyring<ConnectionContext>,
  vault: VaultBridge | undefined,
  info: {
    pid: number;
    startedAt: number;
    socket: string;
    approvals?: OpenApproval[];
    hosts?: HostRecord[];
    knownHosts?: KnownHostsCache;
    refused?: RefusedChanges;
  },
): AgentStatus {
  const now = Date.now();
  return {
    pid: info.pid,
    uptime: Math.floor((now - info.startedAt) / 1000),
    socket: info.socket,
    locked: keyring.locked,
    vault: vault ? { path: vault.vaultPath, present: vault.present } : null,
    vaultLoaded: !!vault?.loaded,
    keys: keyring.locked
      ? []
      : keyring.entriesView().map((e) => ({
          type: e.key.keyType,
          bits: e.key.bits,
          fingerprint: fingerprint(e.key.publicBlob),
          comment: e.comment.toString('utf8'),
          source: e.fromVault ? 'vault' : 'memory',
          confirm: e.confirm,
          confirmForwarded: e.confirmForwarded,
          localOnly: !!e.localOnly,
          ...(e.confirmWindowMs === undefined ? {} : { confirmWindow: e.confirmWindowMs / 1000 }),
          lifetimeLeft:
            e.expiresAt === undefined ? null : Math.max(0, Math.ceil((e.expiresAt - now) / 1000)),
          destinations: e.destinations.map(
            (d) => (d.from.hostname ? `${hopText(d.from)}>` : '') + hopText(d.to),
          ),
        })),
    approvals: (info.approvals ?? []).map((a) => statusApproval(a, info.knownHosts)),
    hosts: (info.hosts ?? []).map((h) => statusHost(h, info.knownHosts)),
    // Shown locked too: what was refused, and from where, is no secret of the keys.
    refusedChanges: info.refused?.view(),
  };
}
