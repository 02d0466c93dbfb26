// The agents measured, as processes: tsagent or OpenSSH's ssh-agent in the
// foreground on a private socket, started and polled until they answer.

import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { MSG } from '../src/agent/protocol';
import { LIST_REQUEST } from './test-keys';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One REQUEST_IDENTITIES round trip; true if an IDENTITIES_ANSWER came back. */
export function probe(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    let done = false;
    const finish = (v: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(v);
    };
    s.on('connect', () => s.write(LIST_REQUEST));
    s.on('data', (d: Buffer) => finish(d.length >= 5 && d[4] === MSG.IDENTITIES_ANSWER));
    s.on('error', () => finish(false));
    s.on('close', () => finish(false));
  });
}

/**
 * The environment agents run in: everything private to `dir`, so no real agent
 * socket, vault or audit log is touched (and none changes what is measured: the
 * default configuration, without a vault or an audit log).
 */
export function benchEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: dir, XDG_DATA_HOME: dir };
  for (const k of ['SSH_AUTH_SOCK', 'SSH_AGENT_PID', 'TSAGENT_VAULT', 'TSAGENT_AUDIT_LOG'])
    delete env[k];
  return env;
}

export type AgentName = 'tsagent' | 'ssh-agent';

export const REPO = path.resolve(__dirname, '..', '..');
export const TSAGENT_MAIN = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
export const SSH_AGENT = '/usr/bin/ssh-agent';

export interface AgentProcess {
  name: AgentName;
  sock: string;
  child: ChildProcess;
  pid: number;
  /** ms from spawn() until the socket first answered REQUEST_IDENTITIES. */
  readyMs: number;
  stop(): Promise<void>;
}

/**
 * Start an agent in the foreground on `sock` (`-D -a sock`) and poll the socket
 * until it answers. `nodeArgs` lets a caller run tsagent under --cpu-prof.
 */
export async function startAgent(
  name: AgentName,
  sock: string,
  env: NodeJS.ProcessEnv = process.env,
  nodeArgs: string[] = [],
  tsagentMain = TSAGENT_MAIN,
): Promise<AgentProcess> {
  const [cmd, args] =
    name === 'tsagent'
      ? [process.execPath, [...nodeArgs, tsagentMain, '-D', '-a', sock]]
      : [SSH_AGENT, ['-D', '-a', sock]];
  const t0 = performance.now();
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  const exitP = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  for (;;) {
    if (exited) throw new Error(`${name} exited before answering: ${stderr}`);
    if (fs.existsSync(sock) && (await probe(sock))) break;
    if (performance.now() - t0 > 15_000) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not answer on ${sock} within 15 s: ${stderr}`);
    }
    await sleep(1);
  }
  const readyMs = performance.now() - t0;
  return {
    name,
    sock,
    child,
    pid: child.pid!,
    readyMs,
    stop: async () => {
      if (!exited) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exitP;
      clearTimeout(t);
    },
  };
}
