// What `tsagent status` is told about the running agent.

import type { Hop } from '../agent/constraints';
import type { Keyring } from '../agent/keyring';
import { fingerprint } from '../ssh/fingerprint';
import type { ConnectionContext } from '../agent/server';
import type { AgentStatus } from './control-protocol';
import type { RefusedChanges } from './refused-changes';
import type { VaultBridge } from './vault-bridge';

function hopText(h: Hop): string {
  return (h.user ? `${h.user}@` : '') + (h.hostname ?? '');
}

/** The agent's state; nothing about keys while locked. */
export function agentStatus(
  keyring: Keyring<ConnectionContext>,
  vault: VaultBridge | undefined,
  info: { pid: number; startedAt: number; socket: string; refused?: RefusedChanges },
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
          lifetimeLeft:
            e.expiresAt === undefined ? null : Math.max(0, Math.ceil((e.expiresAt - now) / 1000)),
          destinations: e.destinations.map(
            (d) => (d.from.hostname ? `${hopText(d.from)}>` : '') + hopText(d.to),
          ),
        })),
    // Shown locked too: what was refused, and from where, is no secret of the keys.
    refusedChanges: info.refused?.view(),
  };
}
