// `tsagent init bash|zsh|fish [agent options]`: print the lines for the shell's
// rc file that start the agent once per boot, or re-use the running one
// (what keychain adds to ssh-agent). The snippet never fails the shell's
// start-up: without tsagent on PATH it does nothing, and it prints nothing on
// standard output (scp and rsync over ssh break on rc files that do).

import fs = require('node:fs');
import path = require('node:path');
import { UsageError } from './errors';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type InitShell = (typeof SHELLS)[number];

export const INIT_USAGE = `usage: tsagent init bash|zsh|fish [-E fingerprint_hash] [-O option] [-P allowed_providers]
               [-t life] [--vault path] [--audit-log path] [--lock-after life]
               [--confirm-forwarded] [--allow-forwarded-changes] [--max-connections n]
               [--idle-timeout life] [--strict]`;

export const INIT_HELP = `${INIT_USAGE}

Print the lines to add to the shell's start-up file: each new shell re-uses the
agent already running for this user (one per boot) or starts it. Agent options
given here are passed to the agent when the snippet starts it.

  bash    add to ~/.bashrc:                    tsagent init bash >> ~/.bashrc
  zsh     add to ~/.zshrc:                     tsagent init zsh >> ~/.zshrc
  fish    add to ~/.config/fish/config.fish:   tsagent init fish >> ~/.config/fish/config.fish

In an SSH login that forwards an agent (ssh -A), the forwarded agent is kept.
  -h, --help    show this help
`;

/** Agent options that make no sense in an rc file (each new shell would get a new agent, or none). */
const REFUSED: Record<string, string> = {
  '-a': 'a new agent in every shell',
  '--new': 'a new agent in every shell',
  '-c': 'the snippet chooses the syntax itself',
  '-s': 'the snippet chooses the syntax itself',
  '-k': 'it would kill the agent',
  '-d': 'the agent must run in the background',
  '-D': 'the agent must run in the background',
};

/** POSIX shell single quoting. */
export function shQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** fish single quoting (only \\ and \' are special inside '…'). */
export function fishQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/[\\']/g, (c) => '\\' + c)}'`;
}

/** Is `tsagent` on PATH (as an executable file)? */
function onPath(env: NodeJS.ProcessEnv): boolean {
  for (const dir of (env.PATH ?? '').split(':')) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, 'tsagent'), fs.constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/**
 * The command the snippet runs: `tsagent` when it is on PATH (survives upgrades),
 * else this very installation (node and the script, absolute), e.g. after
 * `npm install` in a clone and `npx tsagent init bash`.
 */
export function agentCommand(env: NodeJS.ProcessEnv = process.env): string[] {
  if (onPath(env)) return ['tsagent'];
  return [process.execPath, path.resolve(__dirname, 'main.js')];
}

/** Check the agent options (as the agent would) and refuse those that do not belong in an rc file. */
function checkAgentOptions(opts: string[]): void {
  const { parseAgentArgs } = require('./options') as typeof import('./options');
  for (const o of opts) {
    const name = o.startsWith('--') ? o.split('=')[0] : o.slice(0, 2);
    if (REFUSED[name])
      throw new UsageError(`${name} cannot be used in an rc-file snippet: ${REFUSED[name]}`);
    if (o.startsWith('-') && !o.startsWith('--') && o.length > 2 && !'EOPt'.includes(o[1]))
      for (const ch of o.slice(1))
        if (REFUSED[`-${ch}`])
          throw new UsageError(`-${ch} cannot be used in an rc-file snippet: ${REFUSED[`-${ch}`]}`);
  }
  const parsed = parseAgentArgs(opts);
  if (parsed.command.length > 0)
    throw new UsageError(
      `unexpected argument "${parsed.command[0]}": only agent options may follow the shell name`,
    );
}

/**
 * bash/zsh: find the running default agent without starting node. The directory
 * is the one `defaultAgentDir()` picks: $XDG_RUNTIME_DIR/tsagent when that is an
 * absolute path that exists, else the private tsagent-XXXXXX directory of the
 * temp dir (os.tmpdir(): $TMPDIR, $TMP, $TEMP or /tmp) that the pointer file
 * `${XDG_STATE_HOME:-~/.local/state}/tsagent/runtime-dir.HOST` names (daemon/paths.ts).
 * The pointer, the directory, the socket and the pid file must be ours, and the
 * pid a process of ours named tsagent (the agent sets its process title) that
 * is not a zombie: /proc/PID/stat reads "PID (tsagent) S…" (proc(5); a killed
 * agent whose parent has not reaped it is Z). Any doubt leaves __tsagent_pid
 * empty, and the snippet runs tsagent, which decides as before (probe, replace
 * a stale socket). Builtins only: no process starts.
 */
const SH_REUSE = `  __tsagent_tmp=\${TMPDIR:-\${TMP:-\${TEMP:-/tmp}}} __tsagent_pid= __tsagent_dir=
  case $__tsagent_tmp in ?*/) __tsagent_tmp=\${__tsagent_tmp%/} ;; esac
  case \${XDG_STATE_HOME-} in
    /*) __tsagent_ptr=$XDG_STATE_HOME ;;
    *) __tsagent_ptr=\${HOME-}/.local/state ;;
  esac
  __tsagent_ptr=$__tsagent_ptr/tsagent/runtime-dir.\${HOSTNAME:-\${HOST-}}
  if [ -f "$__tsagent_ptr" ] && [ -O "$__tsagent_ptr" ]; then
    { read -r __tsagent_dir <"$__tsagent_ptr"; } 2>/dev/null || __tsagent_dir=
    case $__tsagent_dir in
      "$__tsagent_tmp"/tsagent-*/*) __tsagent_dir= ;;
      "$__tsagent_tmp"/tsagent-?*) ;;
      *) __tsagent_dir= ;;
    esac
  fi
  case \${XDG_RUNTIME_DIR-} in
    /*) if [ -e "$XDG_RUNTIME_DIR" ]; then __tsagent_dir=\${XDG_RUNTIME_DIR%/}/tsagent; fi ;;
  esac
  if [ -n "$__tsagent_dir" ] && [ -O "$__tsagent_dir" ] && [ -S "$__tsagent_dir/agent.sock" ] &&
    [ -O "$__tsagent_dir/agent.sock" ] && [ -f "$__tsagent_dir/agent.pid" ] &&
    [ -O "$__tsagent_dir/agent.pid" ]; then
    { read -r __tsagent_pid <"$__tsagent_dir/agent.pid"; } 2>/dev/null || __tsagent_pid=
  fi
  case $__tsagent_pid in
    '' | *[!0-9]*) __tsagent_pid= ;;
    *) { [ -O "/proc/$__tsagent_pid" ] && read -r __tsagent_stat <"/proc/$__tsagent_pid/stat"; } \\
      2>/dev/null || __tsagent_stat=
      case $__tsagent_stat in
        "$__tsagent_pid (tsagent) "[!ZX]*) ;;
        *) __tsagent_pid= ;;
      esac ;;
  esac
`;

/** fish: the same checks as SH_REUSE (fish's $hostname is the host name). */
const FISH_REUSE = `    set -l __tsagent_dir
    if string match -q '/*' -- "$XDG_RUNTIME_DIR"; and test -e "$XDG_RUNTIME_DIR"
        set __tsagent_dir (string replace -r '/$' '' -- "$XDG_RUNTIME_DIR")/tsagent
    else
        set -l __tsagent_tmp (string match -v '' -- "$TMPDIR" "$TMP" "$TEMP") /tmp
        set -l __tsagent_base (string replace -r '(.)/$' '$1' -- $__tsagent_tmp[1])
        set -l __tsagent_ptr "$HOME/.local/state"
        string match -q '/*' -- "$XDG_STATE_HOME"; and set __tsagent_ptr "$XDG_STATE_HOME"
        set __tsagent_ptr "$__tsagent_ptr/tsagent/runtime-dir.$hostname"
        if test -f "$__tsagent_ptr"; and test -O "$__tsagent_ptr"
            read -l __tsagent_line <"$__tsagent_ptr" 2>/dev/null
            and string match -q -- "$__tsagent_base/tsagent-?*" "$__tsagent_line"
            and not string match -q -- "$__tsagent_base/tsagent-*/*" "$__tsagent_line"
            and set __tsagent_dir "$__tsagent_line"
        end
    end
    set -l __tsagent_pid
    if test -n "$__tsagent_dir"; and test -O "$__tsagent_dir"; and test -S "$__tsagent_dir/agent.sock"
        and test -O "$__tsagent_dir/agent.sock"; and test -f "$__tsagent_dir/agent.pid"
        and test -O "$__tsagent_dir/agent.pid"
        set __tsagent_pid (string match -r '^[0-9]+$' <"$__tsagent_dir/agent.pid" 2>/dev/null)[1]
    end
    if test -n "$__tsagent_pid"; and test -O "/proc/$__tsagent_pid"
        and test -r "/proc/$__tsagent_pid/stat"
        string match -qr "^$__tsagent_pid \\(tsagent\\) [^ZX]" <"/proc/$__tsagent_pid/stat" 2>/dev/null
        or set __tsagent_pid
    else
        set __tsagent_pid
    end
`;

/** The snippet for one shell. `cmd` is the agent command, `opts` extra agent options. */
export function snippet(shell: InitShell, cmd: string[], opts: string[] = []): string {
  const head =
    `# tsagent: start the SSH agent once per boot, or re-use the running one.\n` +
    `# Generated by: ${['tsagent', 'init', shell, ...opts]
      .map(shQuote)
      .join(' ')
      .replace(/[\x00-\x1f\x7f]/g, '?')}\n` +
    `# A forwarded agent (ssh -A) is kept; without tsagent this does nothing.\n`;
  if (shell === 'fish') {
    const run = [...cmd, '-s', ...opts].map(fishQuote).join(' ');
    const probe =
      cmd.length === 1
        ? `command -sq ${fishQuote(cmd[0])}`
        : `test -x ${fishQuote(cmd[0])}; and test -f ${fishQuote(cmd[1])}`;
    return (
      head +
      `if not begin; set -q SSH_CONNECTION; and test -S "$SSH_AUTH_SOCK"; end\n` +
      `    and ${probe}\n` +
      FISH_REUSE +
      `    if test -n "$__tsagent_pid"\n` +
      `        set -gx SSH_AUTH_SOCK "$__tsagent_dir/agent.sock"\n` +
      `        set -gx SSH_AGENT_PID $__tsagent_pid\n` +
      `    else\n` +
      `        for __tsagent_line in (${run})\n` +
      `            set -l __tsagent_kv (string match -r '^(SSH_AUTH_SOCK|SSH_AGENT_PID)=([^;]*);' -- $__tsagent_line)\n` +
      `            and set -gx $__tsagent_kv[2] $__tsagent_kv[3]\n` +
      `        end\n` +
      `        set -e __tsagent_line\n` +
      `    end\n` +
      `end\n`
    );
  }
  const run = [...cmd, '-s', ...opts].map(shQuote).join(' ');
  const probe =
    cmd.length === 1
      ? `command -v ${shQuote(cmd[0])} >/dev/null 2>&1`
      : `[ -x ${shQuote(cmd[0])} ] && [ -f ${shQuote(cmd[1])} ]`;
  return (
    head +
    `if ! { [ -n "\${SSH_CONNECTION-}" ] && [ -S "\${SSH_AUTH_SOCK-}" ]; } &&\n` +
    `  ${probe}; then\n` +
    SH_REUSE +
    `  if [ -n "$__tsagent_pid" ]; then\n` +
    `    SSH_AUTH_SOCK=$__tsagent_dir/agent.sock SSH_AGENT_PID=$__tsagent_pid\n` +
    `    export SSH_AUTH_SOCK SSH_AGENT_PID\n` +
    `  else\n` +
    `    __tsagent_env=$(${run}) && eval "$__tsagent_env" >/dev/null\n` +
    `  fi\n` +
    `  unset __tsagent_env __tsagent_dir __tsagent_pid __tsagent_stat __tsagent_tmp __tsagent_ptr\n` +
    `fi\n`
  );
}

export async function runInit(argv: string[]): Promise<number> {
  const write = (s: string) => new Promise<void>((r) => process.stdout.write(s, () => r()));
  if (argv.includes('-h') || argv.includes('--help')) {
    await write(INIT_HELP);
    return 0;
  }
  try {
    const [shell, ...opts] = argv;
    if (shell === undefined)
      throw new UsageError(
        'name the shell: tsagent init bash, tsagent init zsh or tsagent init fish',
      );
    if (!(SHELLS as readonly string[]).includes(shell))
      throw new UsageError(
        `unsupported shell "${shell}": use bash, zsh or fish (for another Bourne-style shell add eval "$(tsagent -s)" to its rc file; for csh/tcsh, eval \`tsagent -c\`)`,
      );
    checkAgentOptions(opts);
    await write(snippet(shell as InitShell, agentCommand(), opts));
    return 0;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`tsagent init: ${e.message}\n${INIT_USAGE}\n`);
    return 2;
  }
}
