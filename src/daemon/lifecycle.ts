// Starting, re-using, serving and killing the agent process: the parts of
// ssh-agent(1) that are about processes and sockets rather than the protocol.
// What is printed about it (shell syntax) is the cli's business.

import type * as childProcess from 'node:child_process';
import fs = require('node:fs');
import net = require('node:net');
import path = require('node:path');
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';
import { activatedPaths, passListenFd } from './activation';
import { AgentSettings, daemonConfig, DaemonConfig } from './config';
import { DaemonError } from './error';
import { readLineSync } from './fd-line';
import { AgentPaths, defaultAgentPaths, ensurePrivateDir, socketPaths } from './paths';

/** Is an agent answering on this socket? A REQUEST_IDENTITIES round trip decides. */
export function probeAgent(sock: string, timeoutMs = 2000): Promise<'live' | 'stale' | 'absent'> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    const finish = (v: 'live' | 'stale' | 'absent') => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    // A slow agent is still an agent: never replace one that merely took its time.
    const timer = setTimeout(() => finish('live'), timeoutMs);
    s.on('connect', () => s.write(Buffer.of(0, 0, 0, 1, 11)));
    s.on('data', () => finish('live'));
    s.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ENOENT' ? 'absent' : 'stale'));
    s.on('close', () => finish('stale'));
  });
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    if (!Number.isInteger(pid) || pid < 2) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Serialise agent start-ups in one directory (two shells starting at once must
 * end up with one agent): mkdir is atomic; a lock older than 30 s is abandoned.
 */
async function withStartLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(dir, 'start.lock');
  for (let waited = 0; ; waited += 50) {
    try {
      fs.mkdirSync(lock, { mode: 0o700 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 30_000) fs.rmdirSync(lock);
      } catch {
        // Someone else removed it first.
      }
      if (waited > 35_000)
        throw new DaemonError(`timed out waiting for ${lock}: remove it if no tsagent is starting`);
      await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** A background agent: where it listens and its pid. */
export interface StartedAgent {
  sock: string;
  pid: number;
}

/**
 * `eval "$(tsagent)"`: re-use the live default agent, or start one (replacing a
 * stale socket). With -a or --new: always a new agent, exactly as ssh-agent.
 */
export async function startOrReuse(o: AgentSettings, mainScript: string): Promise<StartedAgent> {
  // Started by systemd with its socket (tsagent.socket): serve that one, no re-use.
  const given = activatedPaths();
  if (given) return { sock: given.sock, pid: await spawnBackground(o, given, mainScript) };
  if (o.bindAddress || o.newAgent) {
    const paths = socketPaths(o.bindAddress);
    return { sock: paths.sock, pid: await spawnBackground(o, paths, mainScript) };
  }
  const paths = defaultAgentPaths();
  const dir = paths.dir!;
  ensurePrivateDir(dir);
  const reuse = async () => {
    if ((await probeAgent(paths.sock)) !== 'live') return undefined;
    return readPid(paths.pidFile!);
  };
  // Fast path, taken by every new shell: no lock, one round trip.
  const live = await reuse();
  if (live) return { sock: paths.sock, pid: live };
  return withStartLock(dir, async () => {
    const pid = await reuse();
    if (pid) return { sock: paths.sock, pid };
    // Whatever is there is stale (or an agent without its pid file): replace it.
    fs.rmSync(paths.sock, { force: true });
    fs.rmSync(paths.pidFile!, { force: true });
    return { sock: paths.sock, pid: await spawnBackground(o, paths, mainScript) };
  });
}

/**
 * The argument that makes main.js the background agent. Its configuration
 * comes as one JSON line on fd 3 (a socket pair, which also carries the
 * "ready" report back): never in argv, where ps and top would show it, nor in
 * the environment, which /proc/PID/environ keeps for the process's life.
 */
export const INTERNAL_DAEMON_FLAG = '--internal-daemon';
const CONTROL_FD = 3;

/** Fork the agent into the background; resolves to its pid once it is listening. */
function spawnBackground(o: AgentSettings, paths: AgentPaths, mainScript: string): Promise<number> {
  const pass = passListenFd(paths);
  const config = daemonConfig(o, pass.paths);
  // Loaded here only: the re-use path every new shell takes never spawns.
  const { spawn } = require('node:child_process') as typeof childProcess;
  const child = spawn(process.execPath, [mainScript, INTERNAL_DAEMON_FLAG], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe', ...pass.stdio],
    cwd: '/',
  });
  return new Promise((resolve, reject) => {
    let report = '';
    const ready = child.stdio[CONTROL_FD] as net.Socket;
    ready.on('error', () => {}); // a child that died at once: 'end' tells
    ready.write(JSON.stringify(config) + '\n');
    ready.on('data', (d: Buffer) => (report += d.toString()));
    ready.on('end', () => {
      child.unref();
      ready.destroy();
      try {
        const r = JSON.parse(report) as { ok: boolean; error?: string };
        if (r.ok) resolve(child.pid!);
        else reject(new DaemonError(r.error ?? 'agent failed to start'));
      } catch {
        reject(new DaemonError('agent exited before it was ready'));
      }
    });
  });
}

/** One line from the control fd (nothing after it is consumed). */
function readControlLine(fd: number): string {
  return readLineSync(fd).line.toString('utf8');
}

/**
 * The background agent (main.js --internal-daemon): read the configuration
 * from fd 3, show as `tsagent` in ps and top, serve, then tell the starting
 * process on fd 3 that it is ready (or why not).
 */
export async function runBackgroundAgent(): Promise<void> {
  const report = (r: object) => {
    try {
      fs.writeSync(CONTROL_FD, JSON.stringify(r));
      fs.closeSync(CONTROL_FD);
    } catch {
      // The starter went away; keep serving anyway.
    }
  };
  // Overwrites argv in place (and sets comm): /proc/PID/cmdline reads "tsagent".
  process.title = 'tsagent';
  try {
    let cfg: DaemonConfig;
    try {
      cfg = JSON.parse(readControlLine(CONTROL_FD)) as DaemonConfig;
    } catch {
      throw new DaemonError(`${INTERNAL_DAEMON_FLAG} is for tsagent's own use`);
    }
    const { serveAgent } = require('./serve') as typeof import('./serve');
    await serveAgent(cfg, () => {}, ['SIGTERM', 'SIGINT', 'SIGHUP']);
    report({ ok: true });
  } catch (e) {
    report({ ok: false, error: errorMessage(e) });
    process.exit(1);
  }
}

/** `tsagent -k`: SIGTERM the agent named by SSH_AGENT_PID (as ssh-agent); its pid. */
export function killAgent(pidStr: string | undefined): number {
  if (pidStr === undefined) throw new DaemonError('SSH_AGENT_PID not set, cannot kill agent');
  const pid = Number(pidStr);
  if (!/^\d+$/.test(pidStr) || pid < 2 || pid > 0x7fffffff)
    throw new DaemonError(
      `SSH_AGENT_PID="${escapeText(pidStr)}", which is not a good PID: ${pid < 2 ? 'too small' : 'invalid'}`,
    );
  try {
    process.kill(pid, 'SIGTERM');
  } catch (e) {
    throw new DaemonError(
      `kill: ${(e as NodeJS.ErrnoException).code === 'ESRCH' ? 'No such process' : errorMessage(e)}`,
    );
  }
  return pid;
}
