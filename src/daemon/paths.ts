// Where the agent lives: its directory and socket, and the files beside the
// vault. One resolver for each, used by the agent and by every command that
// looks for it.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { errorMessage } from '../ssh/error';
import { resolveVaultPath } from '../vault/paths';
import { DaemonError } from './error';

/** Where one agent lives: its socket, and what to remove when it exits. */
export interface AgentPaths {
  sock: string;
  /** Private directory created for this agent (removed at exit when `removeDir`). */
  dir?: string;
  removeDir: boolean;
  pidFile?: string;
  /** A listening socket systemd passed (activation.ts): served, never bound nor removed. */
  listenFd?: number;
}

const uid = () => (process.getuid ? process.getuid() : 0);

/** The per-user, per-boot directory of the default agent. */
export function defaultAgentDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg) && fs.existsSync(xdg)) return path.join(xdg, 'tsagent');
  return path.join(os.tmpdir(), `tsagent-${uid()}`);
}

/** The default agent's socket, pid file and directory. */
export function defaultAgentPaths(env: NodeJS.ProcessEnv = process.env): AgentPaths {
  const dir = defaultAgentDir(env);
  return {
    dir,
    sock: path.join(dir, 'agent.sock'),
    pidFile: path.join(dir, 'agent.pid'),
    removeDir: true,
  };
}

/** The agent to talk to: $SSH_AUTH_SOCK, else the default per-user agent. */
export function agentSocket(env: NodeJS.ProcessEnv = process.env): string {
  return env.SSH_AUTH_SOCK || path.join(defaultAgentDir(env), 'agent.sock');
}

/** A new private directory and socket name, as ssh-agent's mkdtemp. */
export function freshPaths(): AgentPaths {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-'));
  return { dir, sock: path.join(dir, `agent.${process.ppid}`), removeDir: true };
}

/** `-a PATH`: exactly that socket (as ssh-agent), else a fresh private directory. */
export function socketPaths(bindAddress: string | undefined): AgentPaths {
  return bindAddress ? { sock: path.resolve(bindAddress), removeDir: false } : freshPaths();
}

/** Create (0700) or check a directory only we may use; anything else is refused. */
export function ensurePrivateDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new DaemonError(`cannot create ${dir}: ${errorMessage(e)}`);
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory())
    throw new DaemonError(`${dir} is not a directory: remove it and try again`);
  if (st.uid !== uid())
    throw new DaemonError(`${dir} is owned by uid ${st.uid}, not by you: remove it and try again`);
  if (st.mode & 0o077)
    throw new DaemonError(
      `${dir} is accessible by others (mode 0${(st.mode & 0o777).toString(8)}): run chmod 700 ${dir}`,
    );
}

/**
 * The audit log: --audit-log, else $TSAGENT_AUDIT_LOG, else `audit.log` beside
 * the vault (the vault resolved as src/vault/paths.ts does).
 */
export function auditLogPath(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  vaultPath: string = resolveVaultPath(undefined, env),
): string {
  const chosen = explicit || env.TSAGENT_AUDIT_LOG;
  return chosen ? path.resolve(chosen) : path.join(path.dirname(vaultPath), 'audit.log');
}

/** Where an owner lock's secret is kept: readable by the agent's owner only. */
export function recoveryPath(paths: AgentPaths): string {
  return paths.dir ? path.join(paths.dir, 'recovery') : `${paths.sock}.recovery`;
}

/** Where recoveryPath() may have put the secret of the agent on `sock` (-a, or a directory). */
export function recoveryCandidates(sock: string): string[] {
  return [`${sock}.recovery`, path.join(path.dirname(sock), 'recovery')];
}
