// Running the agent in this process: keyring + server on a socket, the
// confirm prompt, pid file, signals, and clean removal of what it created.
// The composition root: the only place that wires agent, vault and daemon.

import fs = require('node:fs');
import { ApprovalWindows } from '../agent/approvals';
import type { AuditLog } from '../agent/audit';
import { HostKeyOrder } from '../agent/host-order';
import { Keyring } from '../agent/keyring';
import { disableDumping, peerCredentials } from '../agent/peer';
import type { Response } from '../agent/protocol';
import { AgentServer, ConnectionContext, Logger } from '../agent/server';
import { errorMessage } from '../ssh/error';
import { DaemonConfig, LIMITS } from './config';
import { agentDevices } from './devices';
import { encodeStatus, EXT } from './control-protocol';
import { DaemonError } from './error';
import { KnownHostsCache } from './known-hosts-cache';
import { LearnedOrder } from './learned-order';
import type { UnlockOnDemand } from '../agent/unlock-on-demand';
import { isForwarded } from '../agent/destination';
import { escapeText } from '../ssh/escape';
import { listenTarget } from './activation';
import { messageArrived } from './memory';
import { RefusedChanges } from './refused-changes';
import { VaultBridge } from './vault-bridge';
import { VaultHostOrder } from './vault-host-order';
import { WindowedConfirm } from './windowed-confirm';

// What only some agents ever do (confirm prompts, audit records, unlock on
// demand, tsagent status) loads when first done: an idle agent's heap holds
// the source and code of every module it loaded.
const prompt = () => require('./prompt') as typeof import('./prompt');
const status = () => require('./status') as typeof import('./status');

export interface RunningAgent {
  server: AgentServer;
  shutdown: () => Promise<void>;
}

export async function serveAgent(
  cfg: DaemonConfig,
  log: Logger,
  signals: NodeJS.Signals[],
): Promise<RunningAgent> {
  process.umask(0o077);
  if (!disableDumping()) {
    const msg = 'could not disable core dumps and ptrace (prctl PR_SET_DUMPABLE)';
    if (cfg.strict) throw new DaemonError(`${msg}: refusing to start (--strict)`);
    log(`warning: ${msg}`);
    process.stderr.write(`tsagent: warning: ${msg}\n`);
  }
  const env = { ...process.env };
  const knownHosts = new KnownHostsCache();
  const vault = cfg.vault
    ? new VaultBridge(
        cfg.vault,
        log,
        (ids) => keyring.replaceVaultIdentities(ids),
        cfg.lifetime,
        knownHosts,
      )
    : undefined;
  const approvals = new WindowedConfirm(
    new ApprovalWindows({ lifeMs: cfg.confirmWindow * 1000 }),
    (entry, ctx, details) => {
      const { askConfirm } = require('../agent/confirm') as typeof import('../agent/confirm');
      const text = prompt().confirmPrompt(entry, ctx, details, cfg.fingerprintHash, knownHosts);
      return askConfirm(text, env);
    },
  );
  // What each host accepted (issue 13), kept in the vault while it is open.
  const hostOrder: HostKeyOrder = new HostKeyOrder({
    onChange: (significant) => learned.changed(significant),
  });
  const learned = new VaultHostOrder(hostOrder, vault, log);
  const keyring: Keyring<ConnectionContext> = new Keyring<ConnectionContext>({
    defaultLifetime: cfg.lifetime,
    confirmForwarded: cfg.confirmForwarded,
    unlocker:
      vault &&
      (async (pass) => {
        const ids = await vault.unlock(pass);
        if (ids) learned.unlocked();
        return ids;
      }),
    onLock: () => {
      learned.locking();
      vault?.forget();
      approvals.windows.clear(); // every lock ends every approval window (issue 14)
    },
    // A key that leaves (removed, expired) ends its windows: re-added, it asks again.
    onDrop: (blob) => approvals.windows.forgetKey(blob),
    log,
    confirm: approvals.confirm,
  });
  // With a vault, the agent starts locked: its passphrase (ssh-add -X) opens it.
  if (vault?.present) keyring.lockForVault();
  if (vault)
    log(
      vault.present
        ? `vault ${vault.vaultPath}: starting locked; ssh-add -X or tsagent unlock with its passphrase loads its keys`
        : `no vault at ${vault.vaultPath}: starting unlocked (tsagent vault init creates one)`,
    );
  // A key restricted to hosts and visible on this connection has rules naming its host.
  const keyOrder = new LearnedOrder(
    hostOrder,
    (id) => (keyring.find(id.keyBlob)?.destinations.length ?? 0) > 0,
  );
  // Unlock on demand (issue 14): one passphrase prompt for the requests that find the vault locked.
  let onDemand: UnlockOnDemand | undefined;
  const unlockOnDemand = (): UnlockOnDemand => {
    if (onDemand) return onDemand;
    const { UnlockOnDemand } =
      require('../agent/unlock-on-demand') as typeof import('../agent/unlock-on-demand');
    const { askPassphrase } =
      require('./askpass-passphrase') as typeof import('./askpass-passphrase');
    return (onDemand = new UnlockOnDemand({
      enabled: cfg.unlockPrompt,
      askPassphrase: (who) =>
        askPassphrase(
          `Enter the passphrase of the tsagent vault, to use its keys for ${who.description}:`,
          env,
        ),
      tryUnlock: (pass) => keyring.unlock(pass),
    }));
  };
  let audit: AuditLog | undefined;
  if (cfg.auditLog) {
    const { AuditLog } = require('../agent/audit') as typeof import('../agent/audit');
    audit = new AuditLog(cfg.auditLog);
  }
  let idleTimer: NodeJS.Timeout | undefined;
  const resetIdle = () => {
    if (!cfg.lockAfter) return;
    clearTimeout(idleTimer);
    // As SIGUSR1: keys held only in memory go, the vault locks; its passphrase brings keys back.
    idleTimer = setTimeout(() => void server.lockForOwner('idle'), cfg.lockAfter * 1000);
    idleTimer.unref();
  };
  const { paths } = cfg;
  const startedAt = Date.now();
  const devices = agentDevices(cfg, keyring, log, env);
  const refused = new RefusedChanges();
  // Vault security keys take the path of an ssh-add with sk-provider (local, allow-listed).
  if (vault) vault.securityKey = (key, provider) => devices.securityKey(key, provider, false);
  const server: AgentServer = new AgentServer(keyring, {
    log,
    devices,
    maxConnections: cfg.maxConnections,
    idleTimeoutMs: cfg.idleTimeout * 1000,
    messageTimeoutMs: LIMITS.messageTimeoutMs,
    extensions: {
      [EXT.status]: async (): Promise<Response> => ({
        type: 'extension-response',
        name: EXT.status,
        contents: encodeStatus(
          status().agentStatus(keyring, vault, {
            pid: process.pid,
            startedAt,
            socket: paths.sock,
            approvals: approvals.windows.list(),
            hosts: keyOrder.order.entries(),
            knownHosts,
            refused,
          }),
        ),
      }),
      [EXT.approvalsClear]: async (): Promise<Response> => {
        approvals.windows.clear();
        return { type: 'success' };
      },
      [EXT.hostsForget]: async (contents): Promise<Response> => {
        const which = contents.toString('utf8');
        let forgot = 0;
        for (const r of keyOrder.order.entries()) {
          const h = status().statusHost(r, knownHosts);
          if (which === '' || which === h.host || which === h.hostKey)
            forgot += keyOrder.order.forget(r.hostKey) ? 1 : 0;
        }
        return { type: forgot > 0 ? 'success' : 'failure' };
      },
      [EXT.vaultUnlock]: async (pass): Promise<Response> => ({
        type: (await keyring.openVault(pass)) ? 'success' : 'failure',
      }),
    },
    peerOf: peerCredentials,
    orderIdentities: (ctx, ids) => keyOrder.list(ctx, ids),
    onClose: (ctx) => keyOrder.closed(ctx),
    onMessage: messageArrived,
    whenLocked: async (ctx) => {
      if (!vault?.present) return;
      const peer = ctx.peer;
      const cmd = peer?.command ?? '';
      const description = !peer
        ? 'an unknown process'
        : `pid ${peer.pid}${cmd ? ` (self-reported command: ${escapeText(cmd)})` : ''}`;
      const outcome = await unlockOnDemand().request({ forwarded: isForwarded(ctx), description });
      log(`unlock on demand for ${description}: ${outcome.unlocked ? 'unlocked' : outcome.reason}`);
    },
    onSign: (ev) =>
      audit?.append(
        prompt().auditRecord(ev, knownHosts, approvals.coveredBy(ev.result.details)?.id),
      ),
    afterSign: (ev) => {
      resetIdle();
      if (ev.result.ok) keyOrder.signed(ev.ctx, ev.keyBlob);
      // touch() writes the vault later: the reply does not wait for a disk write.
      if (ev.result.ok) vault?.touch(ev.result.entry.key.publicBlob);
    },
    vaultPresent: () => !!vault?.present,
    allowForwardedChanges: cfg.allowForwardedChanges,
    onRefusedChange: (ev) => {
      const rec = prompt().refusedChangeRecord(ev, knownHosts);
      refused.add(rec);
      audit?.append(rec);
    },
  });
  try {
    await server.listen(listenTarget(paths));
  } catch (e) {
    const why =
      (e as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? 'Address already in use'
        : errorMessage(e);
    // Only an empty directory goes: the default one may hold a live agent's socket.
    if (paths.removeDir && paths.dir) {
      try {
        fs.rmdirSync(paths.dir);
      } catch {
        // Not empty (or gone): leave it.
      }
    }
    throw new DaemonError(`cannot bind to path ${paths.sock}: ${why}`);
  }
  // A socket systemd passed is systemd's (SocketMode=): neither chmod nor removal.
  const given = paths.listenFd !== undefined;
  if (!given) fs.chmodSync(paths.sock, 0o600);
  const sockIno = given ? undefined : fs.statSync(paths.sock).ino;
  if (paths.pidFile) fs.writeFileSync(paths.pidFile, `${process.pid}\n`, { mode: 0o600 });
  log(`listening on ${paths.sock}, pid ${process.pid}`);
  resetIdle();

  let closing: Promise<void> | undefined;
  const shutdown = () =>
    (closing ??= (async () => {
      keyring.clear();
      await devices.removeAllTokens(); // stop the PKCS#11 helpers
      learned.flush();
      vault?.forget();
      clearTimeout(idleTimer);
      // Remove what we created, but never another agent's socket that replaced ours.
      await server.close();
      try {
        if (fs.statSync(paths.sock).ino === sockIno) fs.rmSync(paths.sock, { force: true });
      } catch {
        // Already gone.
      }
      if (paths.pidFile) fs.rmSync(paths.pidFile, { force: true });
      if (paths.removeDir && paths.dir) {
        try {
          fs.rmdirSync(paths.dir);
        } catch {
          // Not empty: something else lives there; leave it.
        }
      }
    })());
  // A bug in one request's handling must not take every key down with it.
  process.on('uncaughtException', (e) =>
    log(`internal error (agent keeps serving): ${e.stack ?? e}`),
  );
  process.on('unhandledRejection', (e) => log(`internal error (agent keeps serving): ${e}`));
  // A screen locker or suspend hook locks the agent with `kill -USR1 PID` (no secret is
  // written anywhere: only the vault passphrase brings keys back, as in OpenSSH 10).
  process.on('SIGUSR1', () => void server.lockForOwner('SIGUSR1'));
  for (const sig of signals) {
    process.on(sig, () => {
      log(`received ${sig}, exiting`);
      void shutdown().then(() => process.exit(0));
    });
  }
  return { server, shutdown };
}
