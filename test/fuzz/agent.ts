// Starting tsagent for the hardening tests and the fuzzer: like fixtures/agent's
// startAgent, but with the debug log (-d, which excludes -D), optionally as
// another uid (spawn {uid, gid}).

import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { TSAGENT_MAIN, supervise } from '../fixtures/agent';
import { alive, baseEnv, mkTemp } from '../fixtures/run';

export interface User {
  name: string;
  uid: number;
  gid: number;
}

export interface Tsagent {
  sock: string;
  pid: number;
  dir: string;
  /** Where an owner lock once left its secret (`<sock>.recovery`): no such file may appear now. */
  recovery: string;
  process: ChildProcess;
  output(): { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM by pid (SIGKILL after 5 s), wait for the exit, remove the temp dir. */
  stop(): Promise<void>;
}

export interface TsagentOptions {
  /** Extra flags after `-a SOCK`. */
  args?: string[];
  /** -d (debug log on stderr) instead of -D. */
  debug?: boolean;
  env?: Record<string, string | undefined>;
  /** Run as this user (the temp dir is handed to it). */
  user?: User;
  /** Wait until the socket answers (default true). */
  wait?: boolean;
}

/** Start `node main.js -D|-d -a <tmp>/agent.sock ARGS` and wait until it answers. */
export async function startTsagent(opts: TsagentOptions = {}): Promise<Tsagent> {
  const dir = mkTemp('tsagent-harden-');
  if (opts.user) fs.chownSync(dir, opts.user.uid, opts.user.gid);
  const sock = path.join(dir, 'agent.sock');
  const child = spawn(
    process.execPath,
    [TSAGENT_MAIN, opts.debug ? '-d' : '-D', '-a', sock, ...(opts.args ?? [])],
    {
      // No vault, no audit log, no askpass from the developer's environment.
      env: baseEnv({
        HOME: dir,
        XDG_DATA_HOME: path.join(dir, 'no-data'),
        SSH_ASKPASS: '/bin/false',
        ...opts.env,
      }),
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: opts.user?.uid,
      gid: opts.user?.gid,
    },
  );
  const sup = supervise(child, dir, 64 * 1024 * 1024);
  if (opts.wait !== false) await sup.waitReady(sock, 'tsagent');
  return {
    sock,
    pid: child.pid!,
    dir,
    recovery: `${sock}.recovery`,
    process: child,
    output: sup.output,
    exited: sup.exited,
    stop: sup.stop,
  };
}

/** VmRSS of a process in KiB (0 if it cannot be read). */
export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function lookupUser(name: string): User | null {
  try {
    const line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
    const f = line.split(':');
    return { name, uid: Number(f[2]), gid: Number(f[3]) };
  } catch {
    return null;
  }
}

/**
 * A system user for the tests, created (`useradd -M -r`) if absent and we are
 * root. Null when it does not exist and cannot be made.
 */
export function testUser(name: string): User | null {
  const existing = lookupUser(name);
  if (existing || process.getuid?.() !== 0) return existing;
  try {
    execFileSync('useradd', ['-M', '-r', '-s', '/usr/sbin/nologin', name], { stdio: 'ignore' });
  } catch {
    return null;
  }
  return lookupUser(name);
}

/**
 * Skip reason for tests needing two extra uids (the agent's owner and a
 * stranger), or false. Under CI, never a skip: the tests then fail loudly.
 */
export function usersSkip(): string | false {
  if (process.env.CI) return false;
  if (process.platform !== 'linux') return 'Linux only (SO_PEERCRED, /proc)';
  if (process.getuid?.() !== 0 && !lookupUser(OWNER))
    return `not root and no user ${OWNER}: cannot run the agent as a second uid`;
  return false;
}

export const OWNER = 'tsagent-test';
export const STRANGER = 'tsagent-test2';

export interface ConnectResult {
  /** The reply body, 'closed' if the agent hung up without one, or 'timeout'. */
  reply: Buffer | 'closed' | 'timeout';
}

/**
 * Connect to sock and send REQUEST_IDENTITIES, from this process; resolves with
 * the reply. Other uids run this through `node -e` (see requestAs).
 */
export function identitiesRequest(sock: string, timeoutMs = 5000): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (reply: ConnectResult['reply']) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve({ reply });
    };
    const t = setTimeout(() => finish('timeout'), timeoutMs);
    s.on('connect', () => s.write(Buffer.of(0, 0, 0, 1, 11)));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0))
        finish(buf.subarray(4, 4 + buf.readUInt32BE(0)));
    });
    s.on('error', () => finish('closed'));
    s.on('close', () => finish('closed'));
  });
}

/** The same request made by a child process running as `user`: 'reply:HEX', 'closed' or 'timeout'. */
export async function identitiesRequestAs(user: User, sock: string): Promise<string> {
  const js = `
    const s = require('net').connect(process.argv[1]);
    let buf = Buffer.alloc(0), done = false;
    const fin = (v) => { if (!done) { done = true; console.log(v); s.destroy(); process.exit(0); } };
    setTimeout(() => fin('timeout'), 5000);
    s.on('connect', () => s.write(Buffer.of(0, 0, 0, 1, 11)));
    s.on('data', (d) => { buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) fin('reply:' + buf.subarray(4).toString('hex')); });
    s.on('error', (e) => fin('closed ' + e.code));
    s.on('close', () => fin('closed'));`;
  const out = execFileSync(process.execPath, ['-e', js, sock], {
    uid: user.uid,
    gid: user.gid,
    env: baseEnv({ HOME: '/' }),
    encoding: 'utf8',
    timeout: 15_000,
    cwd: '/',
  });
  return out.trim();
}

export { alive };
