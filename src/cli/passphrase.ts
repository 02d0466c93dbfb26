// Reading passphrases the way ssh-add does: from the terminal without echo,
// else through SSH_ASKPASS, or (for scripts) one line per prompt from a file
// descriptor. Never from arguments or the environment.
import childProcess = require('node:child_process');
import { readLineSync } from '../daemon/fd-line';
import type * as tty from 'node:tty';
import { errorMessage } from '../ssh/error';

export class PassphraseError extends Error {}

export type PassphraseSource = 'fd' | 'askpass' | 'tty' | 'none';

/** Where the OpenSSH packages put ssh-askpass when SSH_ASKPASS is unset. */
export const DEFAULT_ASKPASS = '/usr/bin/ssh-askpass';

/**
 * OpenSSH's readpass.c rules (RP_ALLOW_STDIN, as ssh-add uses): askpass needs
 * DISPLAY or WAYLAND_DISPLAY unless SSH_ASKPASS_REQUIRE=force; "prefer" uses it
 * even with a terminal; "never" disables it; otherwise it is used when stdin
 * is not a terminal.
 */
export function choosePassphraseSource(opts: {
  fd?: number;
  env: NodeJS.ProcessEnv;
  stdinIsTTY: boolean;
}): PassphraseSource {
  if (opts.fd !== undefined) return 'fd';
  const env = opts.env;
  let allowAskpass = Boolean(env.DISPLAY || env.WAYLAND_DISPLAY);
  let useAskpass = false;
  const require = (env.SSH_ASKPASS_REQUIRE ?? '').toLowerCase();
  if (require === 'force') useAskpass = allowAskpass = true;
  else if (require === 'prefer') useAskpass = allowAskpass;
  else if (require === 'never') allowAskpass = false;
  if (!useAskpass && !opts.stdinIsTTY) useAskpass = true;
  if (useAskpass && allowAskpass) return 'askpass';
  if (opts.stdinIsTTY) return 'tty';
  return 'none';
}

export interface PassphraseReaderOptions {
  fd?: number;
  env?: NodeJS.ProcessEnv;
  stdin?: NodeJS.ReadStream;
  stderr?: NodeJS.WriteStream;
}

/** Asks for passphrases; `ask` resolves to the bytes typed (no trailing newline). */
export class PassphraseReader {
  readonly source: PassphraseSource;
  private readonly env: NodeJS.ProcessEnv;
  private readonly stdin: NodeJS.ReadStream;
  private readonly stderr: NodeJS.WriteStream;

  constructor(private readonly opts: PassphraseReaderOptions = {}) {
    this.env = opts.env ?? process.env;
    this.stdin = opts.stdin ?? process.stdin;
    this.stderr = opts.stderr ?? process.stderr;
    this.source = choosePassphraseSource({
      fd: opts.fd,
      env: this.env,
      stdinIsTTY: Boolean(this.stdin.isTTY),
    });
  }

  async ask(prompt: string): Promise<Buffer<ArrayBuffer>> {
    switch (this.source) {
      case 'fd':
        return this.fromFd(this.opts.fd as number, prompt);
      case 'askpass':
        return this.fromAskpass(prompt);
      case 'tty':
        return this.fromTty(prompt);
      default:
        throw new PassphraseError(
          'cannot ask for a passphrase: standard input is not a terminal. ' +
            'Run from a terminal, pass --passphrase-fd N, or set SSH_ASKPASS ' +
            '(with DISPLAY, or SSH_ASKPASS_REQUIRE=force)',
        );
    }
  }

  /** One line per prompt, read a byte at a time so the next prompt's line stays in the fd. */
  private fromFd(fd: number, prompt: string): Buffer<ArrayBuffer> {
    let read: { line: Buffer; ended: boolean };
    try {
      read = readLineSync(fd);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A closed fd reads as EBADF, or EINVAL in node.
      if (code === 'EBADF' || code === 'EINVAL')
        throw new PassphraseError(
          `--passphrase-fd ${fd}: not an open file descriptor (e.g. --passphrase-fd 3 3< file)`,
        );
      throw new PassphraseError(`--passphrase-fd ${fd}: ${errorMessage(err)}`);
    }
    const { line, ended } = read;
    if (ended && line.length === 0)
      throw new PassphraseError(
        `--passphrase-fd ${fd}: no line left for "${prompt.trim()}" (end of input)`,
      );
    const end = line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
    const out = Buffer.from(line.subarray(0, end));
    line.fill(0);
    return out;
  }

  /** ssh_askpass(): the prompt is argv[1], the answer is stdout without its newline. */
  private fromAskpass(prompt: string): Buffer<ArrayBuffer> {
    const program = this.env.SSH_ASKPASS || DEFAULT_ASKPASS;
    const res = childProcess.spawnSync(program, [prompt], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: this.env,
      maxBuffer: 64 * 1024,
    });
    if (res.error)
      throw new PassphraseError(`cannot run SSH_ASKPASS program ${program}: ${res.error.message}`);
    if (res.status !== 0) {
      res.stdout?.fill(0);
      throw new PassphraseError(
        `passphrase entry cancelled (${program} exited with ${res.status ?? res.signal})`,
      );
    }
    let out = res.stdout;
    let end = out.length;
    while (end > 0 && (out[end - 1] === 0x0a || out[end - 1] === 0x0d)) end--;
    const pass = Buffer.from(out.subarray(0, end));
    out.fill(0);
    return pass;
  }

  /** Raw mode, no echo; Enter ends, Backspace and ^U edit, ^C or ^D on an empty line cancel. */
  private fromTty(prompt: string): Promise<Buffer<ArrayBuffer>> {
    const stdin = this.stdin as tty.ReadStream;
    // Echo off before the prompt shows: whatever is typed after it is never echoed.
    const wasRaw = stdin.isRaw;
    stdin.setRawMode(true);
    this.stderr.write(prompt);
    stdin.resume();
    return new Promise((resolve, reject) => {
      const typed: number[] = [];
      const finish = () => {
        stdin.off('data', onData);
        stdin.setRawMode(wasRaw);
        stdin.pause();
        this.stderr.write('\n');
      };
      const onData = (chunk: Buffer) => {
        try {
          for (const c of chunk) {
            if (c === 0x0d || c === 0x0a) {
              finish();
              resolve(Buffer.from(typed));
              typed.fill(0);
              return;
            }
            if (c === 0x03 || (c === 0x04 && typed.length === 0)) {
              finish();
              typed.fill(0);
              reject(new PassphraseError('passphrase entry cancelled'));
              return;
            }
            if (c === 0x7f || c === 0x08) typed.pop();
            else if (c === 0x15) typed.length = 0;
            else typed.push(c);
          }
        } finally {
          // Every chunk, the one holding Enter too (often the whole passphrase): overwritten.
          chunk.fill(0);
        }
      };
      stdin.on('data', onData);
    });
  }
}

/** Show that a slow step (the KDF) is working, on a terminal only. */
export async function withProgress<T>(
  label: string,
  work: Promise<T>,
  stderr: NodeJS.WriteStream = process.stderr,
): Promise<T> {
  if (!stderr.isTTY) return work;
  const frames = ['|', '/', '-', '\\'];
  let i = 0;
  stderr.write(`${label}… ${frames[0]}`);
  const timer = setInterval(() => stderr.write(`\r${label}… ${frames[++i % frames.length]}`), 120);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    stderr.write('\r\x1b[K');
  }
}
