#!/usr/bin/env node
// The `tsagent` command. Modules are loaded only on the path that needs them:
// `eval "$(tsagent)"` in every new shell must cost little more than starting node.

import type { DaemonConfig } from './daemon';
import type { AgentOptions } from './options';

/** Subcommands; any other first word is ssh-agent's `command [arg ...]`. */
const SUBCOMMANDS: Record<string, () => (argv: string[]) => Promise<number>> = {
  vault: () => require('./vault').runVault,
  status: () => require('./control').runStatus,
  lock: () => require('./control').runLock,
  unlock: () => require('./control').runUnlock,
  log: () => require('./log').runLog,
  init: () => require('./init').runInit,
  add: () => require('./add').runAdd,
};

function write(s: string): Promise<void> {
  return new Promise((r) => process.stdout.write(s, () => r()));
}

function fail(e: unknown): number {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`tsagent: ${msg}\n`);
  return (e as { exitCode?: number }).exitCode ?? 1;
}

const debugLog = (msg: string) => process.stderr.write(`tsagent[${process.pid}]: ${msg}\n`);

/** The background agent: serve, then tell the starting process (on fd 3) we are ready. */
async function daemonChild(configJson: string): Promise<void> {
  // /proc/PID/comm: ps and top show it, and the rc-file snippet (init.ts) checks it.
  process.title = 'tsagent';
  const report = (r: object) => {
    const fs = require('node:fs') as typeof import('node:fs');
    try {
      fs.writeSync(3, JSON.stringify(r));
      fs.closeSync(3);
    } catch {
      // The starter went away; keep serving anyway.
    }
  };
  try {
    const cfg = JSON.parse(configJson) as DaemonConfig;
    const { serveAgent } = require('./serve') as typeof import('./serve');
    await serveAgent(cfg, () => {}, ['SIGTERM', 'SIGINT', 'SIGHUP']);
    report({ ok: true });
  } catch (e) {
    report({ ok: false, error: (e as Error).message });
    process.exit(1);
  }
}

async function runCommand(o: AgentOptions): Promise<number> {
  const { freshPaths, daemonConfig } = require('./daemon') as typeof import('./daemon');
  const { serveAgent } = require('./serve') as typeof import('./serve');
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const path = require('node:path') as typeof import('node:path');
  const paths = o.bindAddress
    ? { sock: path.resolve(o.bindAddress), removeDir: false }
    : freshPaths();
  // Like ssh-agent, ignore SIGINT: the command in the foreground handles ^C.
  process.on('SIGINT', () => {});
  const agent = await serveAgent(daemonConfig(o, paths), () => {}, ['SIGTERM', 'SIGHUP']);
  const env = { ...process.env, SSH_AUTH_SOCK: paths.sock, SSH_AGENT_PID: String(process.pid) };
  return new Promise((resolve) => {
    const child = spawn(o.command[0], o.command.slice(1), { stdio: 'inherit', env });
    const finish = async (code: number) => {
      await agent.shutdown();
      resolve(code);
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      // As ssh-agent's execvp failure: "cmd: No such file or directory", exit 1.
      const why =
        e.code === 'ENOENT'
          ? 'No such file or directory'
          : e.code === 'EACCES'
            ? 'Permission denied'
            : e.message;
      process.stderr.write(`${o.command[0]}: ${why}\n`);
      void finish(1);
    });
    child.on('exit', (code, signal) => {
      const os = require('node:os') as typeof import('node:os');
      void finish(code ?? 128 + (signal ? os.constants.signals[signal] : 0));
    });
  });
}

async function runAgent(argv: string[]): Promise<number> {
  if (argv[0] === '-h' || argv[0] === '--help') {
    await write((require('./options') as typeof import('./options')).HELP);
    return 0;
  }
  const { parseAgentArgs, UsageError, USAGE, envLines, shellSyntax } =
    require('./options') as typeof import('./options');
  let o: AgentOptions;
  try {
    o = parseAgentArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`tsagent: ${e.message}\n${USAGE}\n`);
      return 1;
    }
    throw e;
  }
  const daemon = require('./daemon') as typeof import('./daemon');
  if (o.kill) {
    await write(daemon.killAgent(o));
    return 0;
  }
  if (o.command.length > 0) return runCommand(o);
  if (o.foreground || o.debug) {
    const path = require('node:path') as typeof import('node:path');
    const { serveAgent } = require('./serve') as typeof import('./serve');
    const paths = o.bindAddress
      ? { sock: path.resolve(o.bindAddress), removeDir: false }
      : daemon.freshPaths();
    await serveAgent(daemon.daemonConfig(o, paths), o.debug ? debugLog : () => {}, [
      'SIGTERM',
      'SIGINT',
      'SIGHUP',
    ]);
    await write(
      envLines(shellSyntax(o, process.env), paths.sock) + `echo Agent pid ${process.pid};\n`,
    );
    return -1; // keep running
  }
  await write(await daemon.startOrReuse(o, __filename));
  return 0;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--internal-daemon') return daemonChild(argv[1]);
  let code: number;
  try {
    const sub = SUBCOMMANDS[argv[0]];
    code = sub ? await sub()(argv.slice(1)) : await runAgent(argv);
  } catch (e) {
    code = fail(e);
  }
  if (code >= 0) process.exit(code);
}

void main();
