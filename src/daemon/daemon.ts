// Starting, re-using, serving and killing the agent process: the parts of
// ssh-agent(1) that are about processes and sockets rather than the protocol.

import type * as childProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { AgentOptions, envLines, shellSyntax } from '../cli/options';

/** Where one agent lives: its socket, and what to remove when it exits. */
export interface AgentPaths {
  sock: string;
  /** Private directory created for this agent (removed at exit when `removeDir`). */
  dir?: string;
  removeDir: boolean;
  pidFile?: string;
}

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const uid = () => (process.getuid ? process.getuid() : 0);

/** The per-user, per-boot directory of the default agent. */
export function defaultAgentDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg) && fs.existsSync(xdg)) return path.join(xdg, 'tsagent');
  return path.join(os.tmpdir(), `tsagent-${uid()}`);
}

/** Create (0700) or check a directory only we may use; anything else is refused. */
export function ensurePrivateDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new CliError(`cannot create ${dir}: ${(e as Error).message}`);
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new CliError(`${dir} is not a directory: remove it and try again`);
  if (st.uid !== uid())
    throw new CliError(`${dir} is owned by uid ${st.uid}, not by you: remove it and try again`);
  if (st.mode & 0o077)
    throw new CliError(
      `${dir} is accessible by others (mode 0${(st.mode & 0o777).toString(8)}): run chmod 700 ${dir}`,
    );
}

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
        throw new CliError(`timed out waiting for ${lock}: remove it if no tsagent is starting`);
      await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** What a background start prints: ssh-agent's lines, in the chosen shell's syntax. */
function startLines(o: AgentOptions, sock: string, pid: number): string {
  return envLines(shellSyntax(o, process.env), sock, pid) + `echo Agent pid ${pid};\n`;
}

/**
 * `eval "$(tsagent)"`: re-use the live default agent, or start one (replacing a
 * stale socket). With -a or --new: always a new agent, exactly as ssh-agent.
 */
export async function startOrReuse(o: AgentOptions, mainScript: string): Promise<string> {
  if (o.bindAddress || o.newAgent) {
    const paths = o.bindAddress
      ? { sock: path.resolve(o.bindAddress), removeDir: false }
      : freshPaths();
    const pid = await spawnBackground(o, paths, mainScript);
    return startLines(o, paths.sock, pid);
  }
  const dir = defaultAgentDir();
  ensurePrivateDir(dir);
  const paths: AgentPaths = {
    dir,
    sock: path.join(dir, 'agent.sock'),
    pidFile: path.join(dir, 'agent.pid'),
    removeDir: true,
  };
  const reuse = async () => {
    if ((await probeAgent(paths.sock)) !== 'live') return undefined;
    return readPid(paths.pidFile!);
  };
  // Fast path, taken by every new shell: no lock, one round trip.
  const live = await reuse();
  if (live) return startLines(o, paths.sock, live);
  return withStartLock(dir, async () => {
    const pid = await reuse();
    if (pid) return startLines(o, paths.sock, pid);
    // Whatever is there is stale (or an agent without its pid file): replace it.
    fs.rmSync(paths.sock, { force: true });
    fs.rmSync(paths.pidFile!, { force: true });
    return startLines(o, paths.sock, await spawnBackground(o, paths, mainScript));
  });
}

/** A new private directory and socket name, as ssh-agent's mkdtemp. */
export function freshPaths(): AgentPaths {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-'));
  return { dir, sock: path.join(dir, `agent.${process.ppid}`), removeDir: true };
}

export interface DaemonConfig {
  paths: AgentPaths;
  lifetime?: number;
  fingerprintHash: 'sha256' | 'md5';
  confirmForwarded?: boolean;
  /** Where sign requests are logged (JSON lines); none if unset. */
  auditLog?: string;
  /** The vault file, if the agent serves one. */
  vault?: string;
  /** Lock after this many idle seconds. */
  lockAfter?: number;
  maxConnections: number;
  /** Seconds a connection may stay silent; 0 = for ever. */
  idleTimeout: number;
  /** Refuse to start if a process protection step fails. */
  strict: boolean;
}

/** Defaults for the connection limits (documented in tsagent(1)). */
export const LIMITS = { maxConnections: 256, idleTimeout: 3600, messageTimeoutMs: 10_000 } as const;

/** Data files live beside the vault: `$XDG_DATA_HOME/tsagent/` by default. */
function defaultVaultPath(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_DATA_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'tsagent', 'vault');
}

/** The agent's settings from its command line and environment. */
export function daemonConfig(o: AgentOptions, paths: AgentPaths, env = process.env): DaemonConfig {
  const vault = path.resolve(o.vault ?? env.TSAGENT_VAULT ?? defaultVaultPath(env));
  // The audit log sits next to the vault, once there is a vault directory.
  let auditLog = o.auditLog ?? env.TSAGENT_AUDIT_LOG;
  if (!auditLog && fs.existsSync(path.dirname(vault)))
    auditLog = path.join(path.dirname(vault), 'audit.log');
  return {
    paths,
    lifetime: o.lifetime,
    fingerprintHash: o.fingerprintHash,
    confirmForwarded: o.confirmForwarded,
    auditLog: auditLog && path.resolve(auditLog),
    vault,
    lockAfter: o.lockAfter,
    maxConnections: o.maxConnections ?? LIMITS.maxConnections,
    idleTimeout: o.idleTimeout ?? LIMITS.idleTimeout,
    strict: o.strict,
  };
}

/** Fork the agent into the background; resolves to its pid once it is listening. */
function spawnBackground(o: AgentOptions, paths: AgentPaths, mainScript: string): Promise<number> {
  const config = daemonConfig(o, paths);
  // Loaded here only: the re-use path every new shell takes never spawns.
  const { spawn } = require('node:child_process') as typeof childProcess;
  const child = spawn(process.execPath, [mainScript, '--internal-daemon', JSON.stringify(config)], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    cwd: '/',
  });
  return new Promise((resolve, reject) => {
    let report = '';
    const ready = child.stdio[3] as NodeJS.ReadableStream;
    ready.on('data', (d: Buffer) => (report += d.toString()));
    ready.on('end', () => {
      child.unref();
      (ready as unknown as net.Socket).destroy();
      try {
        const r = JSON.parse(report) as { ok: boolean; error?: string };
        if (r.ok) resolve(child.pid!);
        else reject(new CliError(r.error ?? 'agent failed to start'));
      } catch {
        reject(new CliError('agent exited before it was ready'));
      }
    });
  });
}

/** `tsagent -k`: kill the agent named by SSH_AGENT_PID and print the unset lines. */
export function killAgent(o: AgentOptions): string {
  const pidStr = process.env.SSH_AGENT_PID;
  if (pidStr === undefined) throw new CliError('SSH_AGENT_PID not set, cannot kill agent');
  const pid = Number(pidStr);
  if (!/^\d+$/.test(pidStr) || pid < 2 || pid > 0x7fffffff)
    throw new CliError(
      `SSH_AGENT_PID="${pidStr}", which is not a good PID: ${pid < 2 ? 'too small' : 'invalid'}`,
    );
  try {
    process.kill(pid, 'SIGTERM');
  } catch (e) {
    throw new CliError(
      `kill: ${(e as NodeJS.ErrnoException).code === 'ESRCH' ? 'No such process' : (e as Error).message}`,
    );
  }
  const csh = shellSyntax(o, process.env) === 'csh';
  const unset = (k: string) => (csh ? `unsetenv ${k};\n` : `unset ${k};\n`);
  return unset('SSH_AUTH_SOCK') + unset('SSH_AGENT_PID') + `echo Agent pid ${pid} killed;\n`;
}
