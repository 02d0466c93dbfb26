// ssh-agent's command line: getopt without permutation (options stop at the
// first non-option, as OpenSSH's bundled getopt does), and convtime's lifetimes.

import type { AgentSettings } from '../daemon/config';
import { UsageError } from './errors';

// init.ts (and older callers) import it from here; it is the one in errors.ts.
export { UsageError };

/** The agent's settings (what src/daemon runs with), and what only the command line uses. */
export interface AgentOptions extends AgentSettings {
  shell?: 'sh' | 'csh';
  foreground: boolean; // -D
  debug: boolean; // -d
  kill: boolean; // -k
  options: string[]; // -O, always collected here
  command: string[];
}

export const USAGE = `usage: tsagent [-c | -s] [-Dd] [-a bind_address] [-E fingerprint_hash]
               [-O option] [-P allowed_providers] [-t life] [--new]
               [--vault path] [--audit-log path] [--lock-after life]
               [--confirm-forwarded] [--confirm-window life] [--no-unlock-prompt]
               [--allow-forwarded-changes] [--max-connections n]
               [--idle-timeout life] [--strict]
       tsagent [-a bind_address] [-E fingerprint_hash] [-O option]
               [-P allowed_providers] [-t life] command [arg ...]
       tsagent [-c | -s] -k
       tsagent vault|unlock|lock|status|approvals|hosts|log|init|add ... (see tsagent(1))`;

/** `tsagent --help`: every flag and subcommand, one line each. */
export const HELP = `tsagent: an ssh-agent with an encrypted key vault (drop-in for OpenSSH's ssh-agent)

${USAGE}

Agent options (as ssh-agent):
  -a bind_address        bind the agent to this Unix socket (a new agent, as ssh-agent)
  -c                     print C-shell commands (default: from $SHELL)
  -s                     print Bourne shell commands
  -D                     run in the foreground
  -d                     run in the foreground with a debug log on standard error
  -k                     kill the agent named by $SSH_AGENT_PID
  -t life                default lifetime of added keys (90, 10m, 1h30m)
  -E fingerprint_hash    fingerprints in prompts: sha256 (default) or md5
  -O option              allow-remote-pkcs11 (forwarded clients may load providers)
                         or no-restrict-websafe (web-origin FIDO keys sign anything)
  -P allowed_providers   PKCS#11/FIDO libraries allowed (default /usr/lib*/*,/usr/local/lib*/*)
tsagent options:
  --new                  start a new agent instead of re-using the running one
  --vault path           the vault file (default: $TSAGENT_VAULT, else $XDG_DATA_HOME/tsagent/vault)
  --audit-log path       log every sign request here (default: audit.log beside the vault)
  --lock-after life      lock after this long without a signature
  --confirm-forwarded    ask before any use of a key through a forwarded connection
  --confirm-window life  after a confirm yes, the same use from the same session is not asked
                         again for this long (default 0: ask every time)
  --no-unlock-prompt     never ask for the vault passphrase when a locked agent is used
  --allow-forwarded-changes
                         serve adds, removes, lock and unlock from forwarded connections (as ssh-agent)
  --max-connections n    connections served at once (default 256)
  --idle-timeout life    close connections silent for this long (default 1h; 0 = never)
  --strict               refuse to start if process protection (no ptrace, no core dumps) fails
  -h, --help             show this help
Commands:
  tsagent vault ...      manage the vault (tsagent vault --help)
  tsagent add [--save] [-c] [-t life] [--local-only] file ...
                         add keys as ssh-add does; --save also stores them in the vault
  tsagent unlock         unlock the agent and load the vault's keys
  tsagent lock           lock the agent with a password, as ssh-add -x (it or the vault passphrase unlocks)
  tsagent approvals clear
                         close every approval window (--confirm-window)
  tsagent hosts [forget host|--all]
                         which key each host accepted (offered first), or forget it
  tsagent status         show the agent's state (--json; exit 0 unlocked with keys, 1 locked/empty, 2 no agent)
  tsagent log            show the audit log (--follow, --json)
  tsagent init SHELL     print the rc-file snippet for bash, zsh or fish
`;

const UNITS: Record<string, number> = {
  '': 1,
  s: 1,
  S: 1,
  m: 60,
  M: 60,
  h: 3600,
  H: 3600,
  d: 86400,
  D: 86400,
  w: 604800,
  W: 604800,
};

/** OpenSSH's convtime: "90", "10m", "1h30m" → seconds; null if invalid. */
export function parseLifetime(s: string): number | null {
  if (s === '') return null;
  let total = 0;
  const re = /(\d+)([sSmMhHdDwW]?)/y;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return null;
    total += Number(m[1]) * UNITS[m[2]];
    pos = re.lastIndex;
    if (!Number.isSafeInteger(total) || total > 0x7fffffff) return null;
  }
  return total;
}

export function parseAgentArgs(argv: string[]): AgentOptions {
  const o: AgentOptions = {
    confirmForwarded: false,
    allowForwardedChanges: false,
    strict: false,
    foreground: false,
    debug: false,
    kill: false,
    fingerprintHash: 'sha256',
    options: [],
    newAgent: false,
    command: [],
  };
  let sFlag = false;
  let cFlag = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      i++;
      break;
    }
    if (arg.startsWith('--') && arg.length > 2) {
      i = parseLongOption(o, argv, i);
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    for (let j = 1; j < arg.length; j++) {
      const ch = arg[j];
      const takesArg = 'EaOPt'.includes(ch);
      let value = '';
      if (takesArg) {
        value = arg.slice(j + 1) || argv[++i];
        if (value === undefined) throw new UsageError(`option requires an argument -- ${ch}`);
        j = arg.length;
      }
      switch (ch) {
        case 'c':
          if (sFlag) throw new UsageError('-c and -s are exclusive');
          cFlag = true;
          break;
        case 's':
          if (cFlag) throw new UsageError('-c and -s are exclusive');
          sFlag = true;
          break;
        case 'd':
        case 'D':
          if (o.debug || o.foreground) throw new UsageError('-d and -D are exclusive');
          if (ch === 'd') o.debug = true;
          else o.foreground = true;
          break;
        case 'k':
          o.kill = true;
          break;
        case 'a':
          o.bindAddress = value;
          break;
        case 'E':
          if (value !== 'sha256' && value !== 'md5')
            throw new UsageError(`Invalid hash algorithm "${value}" for -E: use sha256 or md5`);
          o.fingerprintHash = value;
          break;
        case 'O':
          if (value !== 'no-restrict-websafe' && value !== 'allow-remote-pkcs11')
            throw new UsageError(
              `Unknown -O option "${value}": use no-restrict-websafe or allow-remote-pkcs11`,
            );
          o.options.push(value);
          break;
        case 'P':
          o.allowedProviders = value;
          break;
        case 't': {
          const t = parseLifetime(value);
          if (t === null)
            throw new UsageError(
              `Invalid lifetime "${value}" for -t: give seconds or a time like 90, 10m or 1h30m`,
            );
          o.lifetime = t;
          break;
        }
        default:
          throw new UsageError(`unknown option -- ${ch}`);
      }
    }
  }
  o.command = argv.slice(i);
  if (o.command.length > 0 && (cFlag || sFlag || o.kill || o.debug || o.foreground))
    throw new UsageError('a command cannot be combined with -c, -s, -k, -d or -D');
  if (cFlag) o.shell = 'csh';
  else if (sFlag) o.shell = 'sh';
  return o;
}

/** tsagent's own long options (ssh-agent has none); returns the index of the last argv word used. */
function parseLongOption(o: AgentOptions, argv: string[], i: number): number {
  const [name, inline] = argv[i].split(/=(.*)/s, 2);
  const value = (): string => {
    if (inline !== undefined) return inline;
    if (i + 1 >= argv.length) throw new UsageError(`option ${name} requires an argument`);
    return argv[++i];
  };
  switch (name) {
    case '--new':
      o.newAgent = true;
      break;
    case '--confirm-forwarded':
      o.confirmForwarded = true;
      break;
    case '--allow-forwarded-changes':
      o.allowForwardedChanges = true;
      break;
    case '--vault':
      o.vault = value();
      break;
    case '--audit-log':
      o.auditLog = value();
      break;
    case '--lock-after': {
      const v = value();
      const t = parseLifetime(v);
      if (t === null || t === 0)
        throw new UsageError(
          `Invalid --lock-after time "${v}": give a time like 30m or 1h (more than 0)`,
        );
      o.lockAfter = t;
      break;
    }
    case '--no-unlock-prompt':
      o.noUnlockPrompt = true;
      break;
    case '--confirm-window': {
      const v = value();
      const t = parseLifetime(v);
      if (t === null)
        throw new UsageError(
          `Invalid --confirm-window time "${v}": give seconds or a time like 5m (0 = ask every time)`,
        );
      o.confirmWindow = t;
      break;
    }
    case '--max-connections': {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65536)
        throw new UsageError(`--max-connections needs a number from 1 to 65536, not "${v}"`);
      o.maxConnections = Number(v);
      break;
    }
    case '--idle-timeout': {
      const v = value();
      const t = parseLifetime(v);
      if (t === null)
        throw new UsageError(
          `Invalid --idle-timeout time "${v}": give seconds or a time like 1h (0 = never)`,
        );
      o.idleTimeout = t;
      break;
    }
    case '--strict':
      o.strict = true;
      break;
    default:
      throw new UsageError(`unknown option ${name}`);
  }
  return i;
}

/** Which shell syntax to print: -c/-s, else csh if $SHELL ends in "csh" (as ssh-agent). */
export function shellSyntax(o: AgentOptions, env: NodeJS.ProcessEnv): 'sh' | 'csh' {
  if (o.shell) return o.shell;
  const sh = env.SHELL ?? '';
  return sh.length > 2 && sh.endsWith('csh') ? 'csh' : 'sh';
}

export function envLines(syntax: 'sh' | 'csh', sock: string, pid?: number): string {
  const set = (k: string, v: string) =>
    syntax === 'csh' ? `setenv ${k} ${v};\n` : `${k}=${v}; export ${k};\n`;
  let s = set('SSH_AUTH_SOCK', sock);
  if (pid !== undefined) s += set('SSH_AGENT_PID', String(pid));
  return s;
}

/** What `tsagent -k` prints: ssh-agent's unset lines. */
export function unsetLines(syntax: 'sh' | 'csh'): string {
  const unset = (k: string) => (syntax === 'csh' ? `unsetenv ${k};\n` : `unset ${k};\n`);
  return unset('SSH_AUTH_SOCK') + unset('SSH_AGENT_PID');
}
