// Socket activation: systemd (or systemd-socket-activate) creates the agent's
// socket, listens on it, and starts the agent on the first connection with the
// listening socket as fd 3. The sd_listen_fds(3) protocol: LISTEN_PID must be
// our pid (else the variables were meant for another process), LISTEN_FDS is
// how many fds follow from SD_LISTEN_FDS_START = 3, and all three variables
// (with LISTEN_FDNAMES) are unset once read, so no child inherits them.
// The agent then serves that socket: it does not bind one, and it does not
// remove it at exit (the .socket unit owns it, and listens again after us).

import fs = require('node:fs');
import path = require('node:path');
import { escapeText } from '../ssh/escape';
import { DaemonError } from './error';
import { AgentPaths, defaultAgentPaths, ensurePrivateDir } from './paths';

/** sd-daemon.h */
export const SD_LISTEN_FDS_START = 3;

/**
 * The listening fd systemd passed to this process, if any (sd_listen_fds with
 * unset_environment: the variables go whether or not they were for us).
 */
export function takeListenFd(
  env: NodeJS.ProcessEnv = process.env,
  pid: number = process.pid,
): number | undefined {
  const { LISTEN_PID: forPid, LISTEN_FDS: count } = env;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (forPid === undefined || count === undefined) return undefined;
  if (!/^\d+$/.test(forPid) || Number(forPid) !== pid) return undefined;
  if (!/^\d+$/.test(count))
    throw new DaemonError(`LISTEN_FDS="${escapeText(count)}" is not a number of sockets`);
  const n = Number(count);
  if (n === 0) return undefined;
  if (n > 1)
    throw new DaemonError(
      `systemd passed ${n} sockets (LISTEN_FDS=${n}); tsagent serves one: give its .socket unit a single ListenStream=`,
    );
  return SD_LISTEN_FDS_START;
}

/** One line of /proc/net/unix (proc(5)): a socket's inode, state and path. */
interface UnixSocketEntry {
  listening: boolean;
  stream: boolean;
  path: string;
}

/** __SO_ACCEPTCON in /proc/net/unix's Flags: the socket listens. */
const SO_ACCEPTCON = 0x10000;
const SOCK_STREAM = 1;

function unixSocketEntry(inode: string): UnixSocketEntry | undefined {
  // Num RefCount Protocol Flags Type St Inode Path
  for (const line of fs.readFileSync('/proc/self/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[6] !== inode) continue;
    return {
      listening: (parseInt(f[3], 16) & SO_ACCEPTCON) !== 0,
      stream: parseInt(f[4], 16) === SOCK_STREAM,
      path: f.slice(7).join(' '),
    };
  }
  return undefined;
}

/** The path a passed fd listens on; anything but a listening Unix stream socket with a path is refused. */
export function listeningPath(fd: number): string {
  let link: string;
  try {
    link = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    throw new DaemonError(`LISTEN_FDS: fd ${fd} is not open`);
  }
  const ino = /^socket:\[(\d+)\]$/.exec(link)?.[1];
  const entry = ino === undefined ? undefined : unixSocketEntry(ino);
  if (!entry || !entry.stream || !entry.listening)
    throw new DaemonError(
      `LISTEN_FDS: fd ${fd} is not a listening Unix stream socket (the .socket unit needs ListenStream=PATH)`,
    );
  if (!entry.path.startsWith('/'))
    throw new DaemonError(
      `LISTEN_FDS: fd ${fd} has no path (SSH_AUTH_SOCK must name one): use ListenStream=PATH`,
    );
  return entry.path;
}

/**
 * Where an activated agent lives: the socket it was given; with the default
 * socket ($XDG_RUNTIME_DIR/tsagent/agent.sock, as contrib/tsagent.socket makes
 * it), the default directory's pid and recovery files too, so that shells and
 * `tsagent status` find it as they find a started one. Nothing of it is
 * removed at exit but the files the agent wrote.
 */
export function activatedPaths(env: NodeJS.ProcessEnv = process.env): AgentPaths | undefined {
  const fd = takeListenFd(env);
  if (fd === undefined) return undefined;
  const sock = listeningPath(fd);
  const def = defaultAgentPaths(env);
  if (path.resolve(sock) !== path.resolve(def.sock))
    return { sock, removeDir: false, listenFd: fd };
  ensurePrivateDir(def.dir!);
  return { ...def, removeDir: false, listenFd: fd };
}

/**
 * The background agent (lifecycle.ts spawnBackground) gets the socket as its
 * fd 4, after the control socket on fd 3: the extra stdio slot, and the paths
 * as the child sees them.
 */
export const CHILD_LISTEN_FD = 4;

export function passListenFd(paths: AgentPaths): { paths: AgentPaths; stdio: number[] } {
  if (paths.listenFd === undefined) return { paths, stdio: [] };
  return { paths: { ...paths, listenFd: CHILD_LISTEN_FD }, stdio: [paths.listenFd] };
}

/**
 * What the agent's server listens on: its own path, or the fd it was given.
 * (Node has the inherited fd close-on-exec already, as sd_listen_fds would:
 * an askpass child does not get the listening socket.)
 */
export function listenTarget(paths: AgentPaths): string | { fd: number } {
  return paths.listenFd === undefined ? paths.sock : { fd: paths.listenFd };
}
