// Running the agent in this process: keyring + server on a socket, the
// confirm prompt, pid file, signals, and clean removal of what it created.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { askConfirm } from '../agent/confirm';
import * as os from 'node:os';
import { AuditLog, AuditRecord } from '../agent/audit';
import type { Hop } from '../agent/destination';
import { Entry, Keyring, SignDetails } from '../agent/keyring';
import { nameForKey, readKnownHosts } from '../agent/known-hosts';
import { fingerprint } from '../agent/keys';
import { disableDumping, peerCredentials, processCommand } from '../agent/peer';
import type { Response } from '../agent/protocol';
import { AgentServer, ConnectionContext, Logger, SignEvent } from '../agent/server';
import { EXT } from './control';
import { VaultBridge } from './vault-bridge';
import { AgentPaths, CliError, DaemonConfig, LIMITS } from './daemon';

export interface RunningAgent {
  server: AgentServer;
  shutdown: () => Promise<void>;
}

/**
 * The hosts a request passed through, this one first: `sparrow → goober → boomer`.
 * Names come from the matching destination constraint, else known_hosts, else
 * the host key's fingerprint.
 */
export function hopChain(ctx: ConnectionContext, details: SignDetails): string[] {
  if (ctx.binds.length === 0) return [];
  const known = readKnownHosts();
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
): string {
  let p = `Allow use of key ${entry.comment.toString('utf8')}?\nKey fingerprint ${fingerprint(entry.key.publicBlob, hash)}.`;
  if (details.user) p += `\nPublic key authentication request for user "${details.user}".`;
  if (ctx.peer) {
    const cmd = ctx.peer.command ?? processCommand(ctx.peer.pid);
    p += `\nRequested by pid ${ctx.peer.pid}${cmd ? ` (${cmd})` : ''}, uid ${ctx.peer.uid}.`;
  }
  const hops = hopChain(ctx, details);
  if (hops.length > 0)
    p += `\n${details.forwarded ? 'Forwarded' : 'Login'}: ${hops.join(' \u2192 ')}.`;
  return p;
}

/** The audit record of one sign request. */
function auditRecord(ev: SignEvent): AuditRecord {
  const { ctx, result } = ev;
  const details = result.details ?? { hosts: [], forwarded: ctx.binds.some((b) => b.forwarded) };
  return {
    time: new Date().toISOString(),
    key: fingerprint(result.entry?.key.publicBlob ?? ev.keyBlob),
    comment: result.entry?.comment.toString('utf8') ?? '',
    requester: {
      pid: ctx.peer?.pid,
      uid: ctx.peer?.uid,
      command: ctx.peer ? (ctx.peer.command ?? processCommand(ctx.peer.pid)) : undefined,
    },
    hops: hopChain(ctx, details),
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

export interface AgentStatus {
  pid: number;
  uptime: number; // seconds
  socket: string;
  locked: boolean;
  vault: { path: string; present: boolean } | null;
  /** The vault's keys are loaded (it has been unlocked since the last lock). */
  vaultLoaded: boolean;
  keys: {
    type: string;
    bits: number;
    fingerprint: string;
    comment: string;
    source: 'vault' | 'memory';
    confirm: boolean;
    confirmForwarded: boolean;
    lifetimeLeft: number | null; // seconds
    destinations: string[];
  }[];
}

function hopText(h: Hop): string {
  return (h.user ? `${h.user}@` : '') + (h.hostname ?? '');
}

/** What `tsagent status` shows; nothing about keys while locked. */
export function agentStatus(
  keyring: Keyring<ConnectionContext>,
  vault: VaultBridge | undefined,
  info: { pid: number; startedAt: number; socket: string },
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
          lifetimeLeft:
            e.expiresAt === undefined ? null : Math.max(0, Math.ceil((e.expiresAt - now) / 1000)),
          destinations: e.destinations.map(
            (d) => (d.from.hostname ? `${hopText(d.from)}>` : '') + hopText(d.to),
          ),
        })),
  };
}

/** Where an owner lock's secret is kept: readable by the agent's owner only. */
export function recoveryPath(paths: AgentPaths): string {
  return paths.dir ? path.join(paths.dir, 'recovery') : `${paths.sock}.recovery`;
}

export async function serveAgent(
  cfg: DaemonConfig,
  log: Logger,
  signals: NodeJS.Signals[],
): Promise<RunningAgent> {
  process.umask(0o077);
  if (!disableDumping()) {
    const msg = 'could not disable core dumps and ptrace (prctl PR_SET_DUMPABLE)';
    if (cfg.strict) throw new CliError(`${msg}: refusing to start (--strict)`);
    log(`warning: ${msg}`);
    process.stderr.write(`tsagent: warning: ${msg}\n`);
  }
  const env = { ...process.env };
  const vault = cfg.vault
    ? new VaultBridge(cfg.vault, log, (ids) => keyring.replaceVaultIdentities(ids), cfg.lifetime)
    : undefined;
  const keyring: Keyring<ConnectionContext> = new Keyring<ConnectionContext>({
    defaultLifetime: cfg.lifetime,
    confirmForwarded: cfg.confirmForwarded,
    unlocker: vault && ((pass) => vault.unlock(pass)),
    onLock: () => vault?.forget(),
    log,
    confirm: (entry, ctx, details) =>
      askConfirm(confirmPrompt(entry, ctx, details, cfg.fingerprintHash), env),
  });
  // With a vault, the agent starts locked: its passphrase (ssh-add -X) opens it.
  if (vault?.present) keyring.lockForVault();
  if (vault)
    log(
      vault.present
        ? `vault ${vault.vaultPath}: starting locked; ssh-add -X or tsagent unlock with its passphrase loads its keys`
        : `no vault at ${vault.vaultPath}: starting unlocked (tsagent vault init creates one)`,
    );
  const audit = cfg.auditLog ? new AuditLog(cfg.auditLog) : undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  const resetIdle = () => {
    if (!cfg.lockAfter) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => void server.lockForOwner('idle'), cfg.lockAfter * 1000);
    idleTimer.unref();
  };
  const reply = (name: string, body: object): Response => ({
    type: 'extension-response',
    name,
    contents: Buffer.from(JSON.stringify(body)),
  });
  const { paths } = cfg;
  const recoveryFile = recoveryPath(paths);
  const startedAt = Date.now();
  const server: AgentServer = new AgentServer(keyring, {
    log,
    maxConnections: cfg.maxConnections,
    idleTimeoutMs: cfg.idleTimeout * 1000,
    messageTimeoutMs: LIMITS.messageTimeoutMs,
    extensions: {
      [EXT.status]: async () =>
        reply(
          EXT.status,
          agentStatus(keyring, vault, { pid: process.pid, startedAt, socket: paths.sock }),
        ),
      [EXT.lock]: async (): Promise<Response> => ({
        type: (await server.lockForOwner('tsagent lock')) ? 'success' : 'failure',
      }),
      [EXT.vaultUnlock]: async (pass): Promise<Response> => ({
        type: (await keyring.openVault(pass)) ? 'success' : 'failure',
      }),
    },
    peerOf: peerCredentials,
    vaultPresent: () => !!vault?.present,
    onSign: (ev) => {
      resetIdle();
      if (ev.result.ok) vault?.touch(ev.result.entry.key.publicBlob);
      audit?.append(auditRecord(ev));
    },
    onRefusedChange: (ev) =>
      audit?.append({
        time: new Date().toISOString(),
        request: ev.request,
        key: ev.keyBlob ? fingerprint(ev.keyBlob) : '',
        comment: '',
        requester: { pid: ev.ctx.peer?.pid, uid: ev.ctx.peer?.uid, command: ev.ctx.peer?.command },
        hops: hopChain(ev.ctx, { hosts: [], forwarded: true }),
        forwarded: true,
        decision: 'refused',
        reason: 'change from a forwarded connection',
      }),
  });
  try {
    await server.listen(paths.sock);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EADDRINUSE' ? 'Address already in use' : err.message;
    // Only an empty directory goes: the default one may hold a live agent's socket.
    if (paths.removeDir && paths.dir) {
      try {
        fs.rmdirSync(paths.dir);
      } catch {
        // Not empty (or gone): leave it.
      }
    }
    throw new CliError(`cannot bind to path ${paths.sock}: ${why}`);
  }
  fs.chmodSync(paths.sock, 0o600);
  const sockIno = fs.statSync(paths.sock).ino;
  if (paths.pidFile) fs.writeFileSync(paths.pidFile, `${process.pid}\n`, { mode: 0o600 });
  log(`listening on ${paths.sock}, pid ${process.pid}`);
  resetIdle();

  let closing: Promise<void> | undefined;
  const shutdown = () =>
    (closing ??= (async () => {
      keyring.clear();
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
      fs.rmSync(recoveryFile, { force: true });
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
  // A screen locker or suspend hook locks the agent with `kill -USR1 PID`.
  process.on('SIGUSR1', () => void server.lockForOwner('SIGUSR1'));
  for (const sig of signals) {
    process.on(sig, () => {
      log(`received ${sig}, exiting`);
      void shutdown().then(() => process.exit(0));
    });
  }
  return { server, shutdown };
}
