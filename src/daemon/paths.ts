// Where the agent lives: its directory and socket, and the files beside the
// vault. One resolver for each, used by the agent and by every command that
// looks for it.

import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
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

/**
 * Without $XDG_RUNTIME_DIR the default agent lives in a private directory of
 * os.tmpdir() with an unpredictable name (mkdtemp): a fixed name such as
 * /tmp/tsagent-$UID could be created first by another user, and the agent
 * would never start. The name is found again through a file only the user can
 * write: `$XDG_STATE_HOME/tsagent/runtime-dir.HOST` (else ~/.local/state/…),
 * per host, since a home directory may be shared.
 */
export function runtimeDirPointer(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  const base =
    xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || os.homedir(), '.local', 'state');
  return path.join(base, 'tsagent', `runtime-dir.${os.hostname()}`);
}

/** Is `dir` a directory tsagent made for us: tsagent-* in the temp dir, ours, 0700? */
function isOurRuntimeDir(dir: string): boolean {
  if (!path.isAbsolute(dir) || path.dirname(dir) !== path.resolve(os.tmpdir())) return false;
  if (!path.basename(dir).startsWith('tsagent-')) return false;
  try {
    const st = fs.lstatSync(dir);
    return st.isDirectory() && st.uid === uid() && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** The directory the pointer names, if it is still ours; the pointer itself must be ours too. */
function readRuntimeDirPointer(pointer: string): string | undefined {
  try {
    const st = fs.lstatSync(pointer);
    const dirSt = fs.lstatSync(path.dirname(pointer));
    if (!st.isFile() || st.uid !== uid() || st.mode & 0o022) return undefined;
    if (!dirSt.isDirectory() || dirSt.uid !== uid() || dirSt.mode & 0o022) return undefined;
    const dir = fs.readFileSync(pointer, 'utf8').trim();
    return isOurRuntimeDir(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** A new private tsagent-XXXXXX directory, recorded in the pointer (or the one another start recorded first). */
function createRuntimeDir(pointer: string): string {
  const stateDir = path.dirname(pointer);
  try {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new DaemonError(`cannot create ${stateDir}: ${errorMessage(e)}`);
  }
  const st = fs.lstatSync(stateDir);
  if (!st.isDirectory() || st.uid !== uid() || st.mode & 0o022)
    throw new DaemonError(
      `${stateDir} must be a directory of yours that only you can write (run chmod 700 ${stateDir})`,
    );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-'));
  const tmp = `${pointer}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, `${dir}\n`, { mode: 0o600, flag: 'wx' });
    for (;;) {
      try {
        // link() never replaces: of two starts at once, the first pointer wins.
        fs.linkSync(tmp, pointer);
        return dir;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const theirs = readRuntimeDirPointer(pointer);
      if (theirs) {
        fs.rmdirSync(dir);
        return theirs;
      }
      fs.rmSync(pointer, { force: true }); // stale: its directory is gone (a reboot, the agent exited)
    }
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new DaemonError(`cannot record the agent directory in ${pointer}: ${errorMessage(e)}`);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * The per-user, per-boot directory of the default agent: $XDG_RUNTIME_DIR/tsagent,
 * else the private directory the pointer names (created if `create`, else
 * undefined when there is none yet).
 */
export function defaultAgentDir(
  env: NodeJS.ProcessEnv = process.env,
  opts: { create?: boolean } = {},
): string | undefined {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg) && fs.existsSync(xdg)) return path.join(xdg, 'tsagent');
  const pointer = runtimeDirPointer(env);
  return readRuntimeDirPointer(pointer) ?? (opts.create ? createRuntimeDir(pointer) : undefined);
}

/** The default agent's socket, pid file and directory (the directory created if need be). */
export function defaultAgentPaths(env: NodeJS.ProcessEnv = process.env): AgentPaths {
  const dir = defaultAgentDir(env, { create: true })!;
  return {
    dir,
    sock: path.join(dir, 'agent.sock'),
    pidFile: path.join(dir, 'agent.pid'),
    removeDir: true,
  };
}

/**
 * The agent to talk to: $SSH_AUTH_SOCK, else the default per-user agent. With
 * no default directory yet, a path in the user's own state directory, where no
 * socket is: never a name in the temp dir someone else could plant.
 */
export function agentSocket(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SSH_AUTH_SOCK) return env.SSH_AUTH_SOCK;
  const dir = defaultAgentDir(env) ?? path.dirname(runtimeDirPointer(env));
  return path.join(dir, 'agent.sock');
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
