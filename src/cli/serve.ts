// Running the agent in this process: keyring + server on a socket, the
// confirm prompt, pid file, signals, and clean removal of what it created.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { askConfirm } from '../agent/confirm';
import { Entry, Keyring } from '../agent/keyring';
import { fingerprint } from '../agent/keys';
import { disableDumping, peerCredentials, processCommand } from '../agent/peer';
import { AgentServer, ConnectionContext, Logger } from '../agent/server';
import { AgentPaths, CliError, DaemonConfig } from './daemon';

export interface RunningAgent {
  server: AgentServer;
  shutdown: () => Promise<void>;
}

/** The confirm prompt: OpenSSH's wording, plus who asked. */
export function confirmPrompt(
  entry: Entry,
  ctx: ConnectionContext,
  hash: 'sha256' | 'md5',
): string {
  let p = `Allow use of key ${entry.comment.toString('utf8')}?\nKey fingerprint ${fingerprint(entry.key.publicBlob, hash)}.`;
  if (ctx.peer) {
    const cmd = processCommand(ctx.peer.pid);
    p += `\nRequested by pid ${ctx.peer.pid}${cmd ? ` (${cmd})` : ''}, uid ${ctx.peer.uid}.`;
  }
  if (ctx.binds.length > 0) p += `\nForwarded through ${ctx.binds.length} ssh session(s).`;
  return p;
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
  if (!disableDumping())
    log('warning: could not disable core dumps and ptrace (prctl PR_SET_DUMPABLE)');
  const env = { ...process.env };
  const keyring = new Keyring<ConnectionContext>({
    defaultLifetime: cfg.lifetime,
    confirm: (entry, ctx) => askConfirm(confirmPrompt(entry, ctx, cfg.fingerprintHash), env),
  });
  const { paths } = cfg;
  const recoveryFile = recoveryPath(paths);
  const server = new AgentServer(keyring, {
    log,
    peerOf: peerCredentials,
    onOwnerLock: (secret) => {
      // Only the owner can read it: 0600, created anew (never through a planted link).
      fs.rmSync(recoveryFile, { force: true });
      fs.writeFileSync(recoveryFile, secret.toString() + '\n', { mode: 0o600, flag: 'wx' });
    },
  });
  try {
    await server.listen(paths.sock);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EADDRINUSE' ? 'Address already in use' : err.message;
    if (paths.removeDir && paths.dir) fs.rmSync(paths.dir, { recursive: true, force: true });
    throw new CliError(`cannot bind to path ${paths.sock}: ${why}`);
  }
  fs.chmodSync(paths.sock, 0o600);
  if (paths.pidFile) fs.writeFileSync(paths.pidFile, `${process.pid}\n`, { mode: 0o600 });
  log(`listening on ${paths.sock}, pid ${process.pid}`);

  let closing: Promise<void> | undefined;
  const shutdown = () =>
    (closing ??= (async () => {
      keyring.clear();
      // Remove what we created, but never another agent's socket that replaced ours.
      await server.close();
      fs.rmSync(paths.sock, { force: true });
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
