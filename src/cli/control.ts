// `tsagent status`, `tsagent lock`, `tsagent unlock`: talking to the running
// agent through its socket, with tsagent's own extension requests.

import { AgentClient } from '../agent/client';
import { fingerprint } from '../ssh/fingerprint';
import type { Response } from '../agent/protocol';
import { AgentStatus, decodeStatus, EXT } from '../daemon/control-protocol';
import { agentSocket } from '../daemon/paths';
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';
import { CliError } from './errors';

async function connect(): Promise<AgentClient | null> {
  try {
    return await AgentClient.connect(agentSocket());
  } catch {
    return null;
  }
}

async function extension(
  c: AgentClient,
  name: string,
  contents = Buffer.alloc(0),
): Promise<Response> {
  return c.request({ type: 'extension', name, contents });
}

/** The agent's status; for an agent without tsagent's extension (OpenSSH's), what the protocol tells. */
export async function fetchStatus(
  c: AgentClient,
): Promise<AgentStatus | { foreign: true; keys: { fingerprint: string; comment: string }[] }> {
  const r = await extension(c, EXT.status);
  if (r.type === 'extension-response') {
    const st = decodeStatus(r.contents);
    if (!st) throw new CliError(`the agent at ${agentSocket()} sent a malformed status reply`);
    return st;
  }
  const ids = await c.request({ type: 'request-identities' });
  const keys =
    ids.type === 'identities'
      ? ids.identities.map((i) => ({
          fingerprint: fingerprint(i.keyBlob),
          comment: i.comment.toString('utf8'),
        }))
      : [];
  return { foreign: true, keys };
}

function duration(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${m}m` : m ? `${m}m${s % 60}s` : `${s}s`;
}

/** `-h`/`--help` of the small subcommands: usage on stdout, exit 0. */
function helpAsked(argv: string[], usage: string): boolean {
  if (!argv.some((a) => a === '-h' || a === '--help')) return false;
  process.stdout.write(`${usage}\n`);
  return true;
}

/** `tsagent status`. Exit codes scripts can use: 0 unlocked with keys, 1 locked or no keys, 2 no agent. */
export async function runStatus(argv: string[]): Promise<number> {
  if (helpAsked(argv, 'usage: tsagent status [--json]')) return 0;
  const json = argv.includes('--json');
  const bad = argv.find((a) => a !== '--json');
  if (bad) {
    process.stderr.write(`tsagent status: unknown option ${bad}\nusage: tsagent status [--json]\n`);
    return 2;
  }
  const c = await connect();
  if (!c) {
    if (json)
      process.stdout.write(JSON.stringify({ running: false, socket: agentSocket() }) + '\n');
    else
      process.stdout.write(
        `tsagent is not running (no agent at ${agentSocket()}): start it with eval "$(tsagent)"\n`,
      );
    return 2;
  }
  try {
    const st = await fetchStatus(c);
    const locked = 'locked' in st && st.locked;
    if (json) {
      process.stdout.write(JSON.stringify({ running: true, socket: agentSocket(), ...st }) + '\n');
    } else if ('foreign' in st) {
      const sock = escapeText(agentSocket());
      process.stdout.write(`agent at ${sock} (not tsagent): ${st.keys.length} key(s)\n`);
      for (const k of st.keys)
        process.stdout.write(`  ${k.fingerprint} ${escapeText(k.comment)}\n`);
    } else {
      // Everything the agent reports is shown escaped: comments come from whoever added a key.
      const e = escapeText;
      const lines = [
        `tsagent running, pid ${st.pid}, up ${duration(st.uptime)}`,
        `socket: ${e(st.socket)}`,
        `state:  ${st.locked ? 'locked' : 'unlocked'}`,
        `vault:  ${st.vault ? `${e(st.vault.path)}${st.vault.present ? '' : ' (none yet)'}` : 'none'}`,
        `keys:   ${st.locked ? 'hidden while locked' : st.keys.length}`,
      ];
      for (const k of st.keys) {
        const extra = [
          k.source,
          k.confirm ? 'confirm' : '',
          k.confirmForwarded ? 'confirm-forwarded' : '',
          k.localOnly ? 'local-only' : '',
          k.confirmWindow !== undefined ? `confirm window ${duration(k.confirmWindow)}` : '',
          k.lifetimeLeft !== null ? `expires in ${duration(k.lifetimeLeft)}` : '',
          k.destinations.length ? `only ${k.destinations.map(e).join(', ')}` : '',
        ].filter(Boolean);
        lines.push(
          `  ${k.bits} ${e(k.fingerprint)} ${e(k.comment)} (${e(k.type)}) [${extra.join('; ')}]`,
        );
      }
      const open = st.approvals ?? [];
      if (open.length > 0) lines.push(`approvals: ${open.length} open`);
      for (const a of open)
        lines.push(
          `  ${a.key} ${a.destination}, session ${a.session}${a.forwarded ? ', forwarded' : ''}: ` +
            `${duration(a.remaining)} left, used ${a.uses} time(s)`,
        );
      lines.push(...hostLines(st.hosts ?? []));
      lines.push(...refusedLines(st));
      process.stdout.write(lines.join('\n') + '\n');
    }
    return !locked && st.keys.length > 0 ? 0 : 1;
  } finally {
    c.close();
  }
}

/** The changes refused from forwarded connections, latest first, each with its hop chain. */
function refusedLines(st: AgentStatus): string[] {
  const r = st.refusedChanges;
  if (!r) return [];
  const lines = [`refused from forwarded connections: ${r.count}`];
  for (const c of [...r.recent].reverse()) {
    const from = c.hops.length ? c.hops.map(escapeText).join(' \u2192 ') : 'an unbound connection';
    lines.push(`  ${escapeText(c.time)} ${escapeText(c.request)} from ${from}`);
  }
  if (r.count > r.recent.length)
    lines.push(`  (${r.count - r.recent.length} earlier: tsagent log)`);
  return lines;
}

function hostLines(hosts: NonNullable<AgentStatus['hosts']>): string[] {
  if (hosts.length === 0) return [];
  return [
    `hosts:  ${hosts.length} learned`,
    ...hosts.map(
      (h) =>
        `  ${h.host} (${h.hostKey}): ${h.key ? `accepts ${h.key}` : `not known yet, ${h.failures} refused`}`,
    ),
  ];
}

/** `tsagent hosts [forget HOST|--all]`: which key each host accepted, as the agent learned it. */
export async function runHosts(argv: string[]): Promise<number> {
  const usage = 'usage: tsagent hosts [forget host | forget --all]';
  if (helpAsked(argv, usage)) return 0;
  const forget = argv[0] === 'forget' && argv.length === 2;
  if (argv.length > 0 && !forget) {
    process.stderr.write(`tsagent hosts: unexpected ${argv.join(' ')}\n${usage}\n`);
    return 2;
  }
  const c = await connect();
  if (!c) {
    process.stderr.write(`tsagent hosts: no agent at ${agentSocket()}\n`);
    return 2;
  }
  try {
    if (forget) {
      const which = argv[1] === '--all' ? '' : argv[1];
      if ((await extension(c, EXT.hostsForget, Buffer.from(which))).type === 'success') {
        process.stdout.write(which ? `Forgot ${which}.\n` : 'Forgot every host.\n');
        return 0;
      }
      process.stderr.write(`tsagent hosts: nothing learned for ${which || 'any host'}\n`);
      return 1;
    }
    const st = await fetchStatus(c);
    const hosts = 'hosts' in st ? (st.hosts ?? []) : [];
    process.stdout.write(
      hostLines(hosts)
        .slice(1)
        .map((l) => l.slice(2) + '\n')
        .join(''),
    );
    return 0;
  } finally {
    c.close();
  }
}

/** `tsagent approvals clear`: close every approval window (--confirm-window) now. */
export async function runApprovals(argv: string[]): Promise<number> {
  const usage = 'usage: tsagent approvals clear';
  if (helpAsked(argv, usage)) return 0;
  if (argv.length !== 1 || argv[0] !== 'clear') {
    process.stderr.write(`tsagent approvals: expected "clear"\n${usage}\n`);
    return 2;
  }
  const c = await connect();
  if (!c) {
    process.stderr.write(`tsagent approvals: no agent at ${agentSocket()}\n`);
    return 2;
  }
  try {
    if ((await extension(c, EXT.approvalsClear)).type === 'success') {
      process.stdout.write('Approval windows closed.\n');
      return 0;
    }
    process.stderr.write('tsagent approvals: the agent refused (not tsagent?)\n');
    return 1;
  } finally {
    c.close();
  }
}

/** `[--passphrase-fd N]`, the only option of lock and unlock; null after printing the usage. */
function passphraseFdArg(name: string, argv: string[]): { fd?: number } | null {
  let fd: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--passphrase-fd' && /^\d+$/.test(argv[i + 1] ?? '')) fd = Number(argv[++i]);
    else {
      process.stderr.write(
        `tsagent ${name}: unexpected argument ${argv[i]}\nusage: tsagent ${name} [--passphrase-fd N]\n`,
      );
      return null;
    }
  }
  return { fd };
}

/**
 * `tsagent lock [--passphrase-fd N]`: lock with a passphrase, as `ssh-add -x`
 * (asked twice on a terminal or through SSH_ASKPASS, one line from a
 * descriptor). That passphrase unlocks it, and so does the vault's.
 */
export async function runLock(argv: string[]): Promise<number> {
  if (helpAsked(argv, 'usage: tsagent lock [--passphrase-fd N]')) return 0;
  const args = passphraseFdArg('lock', argv);
  if (!args) return 2;
  const c = await connect();
  if (!c) {
    process.stderr.write(
      `tsagent lock: no agent at ${agentSocket()}: start it with eval "$(tsagent)"\n`,
    );
    return 2;
  }
  try {
    const { PassphraseReader } = require('./passphrase') as typeof import('./passphrase');
    const reader = new PassphraseReader({ fd: args.fd });
    const pass = await reader.ask('Enter lock password: ');
    try {
      if (reader.source !== 'fd') {
        const again = await reader.ask('Again: ');
        const same = again.equals(pass);
        again.fill(0);
        if (!same) {
          process.stderr.write(
            'tsagent lock: the passwords do not match; the agent was not locked\n',
          );
          return 1;
        }
      }
      const r = await c.request({ type: 'lock', passphrase: pass });
      if (r.type === 'success') {
        process.stdout.write('Agent locked.\n');
        return 0;
      }
      process.stderr.write('tsagent lock: the agent refused (already locked?)\n');
      return 1;
    } finally {
      pass.fill(0);
    }
  } finally {
    c.close();
  }
}

const noVault = (p: string) => `there is no vault at ${p} (tsagent vault init creates one)`;

/** Why an unlock failed: the vault cannot be opened at all (damage, modes), or the passphrase. */
function unlockFailure(vault: AgentStatus['vault']): string {
  if (!vault) return 'wrong passphrase';
  if (!vault.present) return `wrong passphrase, and ${noVault(vault.path)}`;
  try {
    const { VaultFile } = require('../vault/store') as typeof import('../vault/store');
    new VaultFile(vault.path).checkIntegrity();
  } catch (e) {
    return `cannot open the vault: ${errorMessage(e)}`;
  }
  return `wrong passphrase for vault ${vault.path}`;
}

/** `tsagent unlock [--passphrase-fd N]`: unlock the agent and load the vault's keys. */
export async function runUnlock(argv: string[]): Promise<number> {
  if (helpAsked(argv, 'usage: tsagent unlock [--passphrase-fd N]')) return 0;
  const args = passphraseFdArg('unlock', argv);
  if (!args) return 2;
  const c = await connect();
  if (!c) {
    process.stderr.write(
      `tsagent unlock: no agent at ${agentSocket()}: start it with eval "$(tsagent)"\n`,
    );
    return 2;
  }
  try {
    const st = await fetchStatus(c);
    if ('foreign' in st) {
      process.stderr.write('tsagent unlock: this agent is not tsagent: use ssh-add -X\n');
      return 1;
    }
    // Nothing unlocks without a passphrase: the lock's (tsagent lock, ssh-add -x) or the vault's.
    const needVault = st.vault?.present && !st.vaultLoaded;
    if (!st.locked && !needVault) {
      process.stdout.write('Agent unlocked.\n');
      if (st.vault && !st.vault.present)
        process.stderr.write(`tsagent unlock: ${noVault(st.vault.path)}\n`);
      return 0;
    }
    const { PassphraseReader } = require('./passphrase') as typeof import('./passphrase');
    const pass = await new PassphraseReader({ fd: args.fd }).ask(
      st.locked && !st.vault?.present
        ? 'Enter lock password: '
        : `Enter passphrase for vault ${st.vault?.path ?? ''}${st.locked ? ' (or the lock password)' : ''}: `,
    );
    try {
      const r = st.locked
        ? await c.request({ type: 'unlock', passphrase: pass })
        : await extension(c, EXT.vaultUnlock, pass);
      if (r.type === 'success') {
        process.stdout.write('Agent unlocked.\n');
        if (st.vault && !st.vault.present)
          process.stderr.write(`tsagent unlock: ${noVault(st.vault.path)}\n`);
        return 0;
      }
      // The agent only says no: tell an unusable vault (damage, modes) from a wrong passphrase.
      process.stderr.write(`tsagent unlock: ${unlockFailure(st.vault)}\n`);
      return 1;
    } finally {
      pass.fill(0);
    }
  } finally {
    c.close();
  }
}
