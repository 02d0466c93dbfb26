#!/usr/bin/env node
// The `tsagent` command. Modules are loaded only on the path that needs them:
// `eval "$(tsagent)"` in every new shell must cost little more than starting node.

import type { AgentOptions } from './options';

/** Subcommands; any other first word is ssh-agent's `command [arg ...]`. */
const SUBCOMMANDS: Record<string, () => (argv: string[]) => Promise<number>> = {
  vault: () => require('./vault').runVault,
  status: () => require('./control').runStatus,
  lock: () => require('./control').runLock,
  unlock: () => require('./control').runUnlock,
  approvals: () => require('./control').runApprovals,
  hosts: () => require('./control').runHosts,
  log: () => require('./log').runLog,
  init: () => require('./init').runInit,
  add: () => require('./add').runAdd,
};

function write(s: string): Promise<void> {
  return new Promise((r) => process.stdout.write(s, () => r()));
}

/** Every error ends here: one line on stderr, the error's exit code (1 if it has none). */
function fail(e: unknown): number {
  const { errorMessage } = require('../ssh/error') as typeof import('../ssh/error');
  process.stderr.write(`tsagent: ${errorMessage(e)}\n`);
  const code = (e as { exitCode?: unknown } | null)?.exitCode;
  return typeof code === 'number' ? code : 1;
}

/** -d: one line per message, escaped, so nothing a client sent can forge a line or reach the terminal raw. */
function debugLog(msg: string): void {
  const { escapeText } = require('../ssh/escape') as typeof import('../ssh/escape');
  process.stderr.write(`tsagent[${process.pid}]: ${escapeText(msg)}\n`);
}

async function runCommand(o: AgentOptions): Promise<number> {
  const { daemonConfig } = require('../daemon/config') as typeof import('../daemon/config');
  const { socketPaths } = require('../daemon/paths') as typeof import('../daemon/paths');
  const { serveAgent } = require('../daemon/serve') as typeof import('../daemon/serve');
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const paths = socketPaths(o.bindAddress);
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
  const options = require('./options') as typeof import('./options');
  if (argv[0] === '-h' || argv[0] === '--help') {
    await write(options.HELP);
    return 0;
  }
  const { UsageError } = require('./errors') as typeof import('./errors');
  let o: AgentOptions;
  try {
    o = options.parseAgentArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`tsagent: ${e.message}\n${options.USAGE}\n`);
      return 1;
    }
    throw e;
  }
  const syntax = options.shellSyntax(o, process.env);
  // Not for -D/-d: the agent in this process has no use for starting or killing one.
  const lifecycle = () => require('../daemon/lifecycle') as typeof import('../daemon/lifecycle');
  if (o.kill) {
    const pid = lifecycle().killAgent(process.env.SSH_AGENT_PID);
    await write(options.unsetLines(syntax) + `echo Agent pid ${pid} killed;\n`);
    return 0;
  }
  if (o.command.length > 0) return runCommand(o);
  if (o.foreground || o.debug) {
    const { daemonConfig } = require('../daemon/config') as typeof import('../daemon/config');
    const { socketPaths } = require('../daemon/paths') as typeof import('../daemon/paths');
    const { serveAgent } = require('../daemon/serve') as typeof import('../daemon/serve');
    const { activatedPaths } =
      require('../daemon/activation') as typeof import('../daemon/activation');
    const paths = activatedPaths() ?? socketPaths(o.bindAddress);
    await serveAgent(daemonConfig(o, paths), o.debug ? debugLog : () => {}, [
      'SIGTERM',
      'SIGINT',
      'SIGHUP',
    ]);
    await write(options.envLines(syntax, paths.sock) + `echo Agent pid ${process.pid};\n`);
    return -1; // keep running
  }
  const { sock, pid } = await lifecycle().startOrReuse(o, __filename);
  await write(options.envLines(syntax, sock, pid) + `echo Agent pid ${pid};\n`);
  return 0;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  // Every agent mode (not a subcommand): see daemon/memory.ts.
  if (!SUBCOMMANDS[argv[0]])
    (require('../daemon/memory') as typeof import('../daemon/memory')).startQuietly();
  if (argv[0] === '--internal-daemon') {
    const { runBackgroundAgent } =
      require('../daemon/lifecycle') as typeof import('../daemon/lifecycle');
    return runBackgroundAgent();
  }
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
