// A child process that speaks length-framed messages on stdin/stdout, as
// OpenSSH's ssh-sk-helper and ssh-pkcs11-helper do (msg.c ssh_msg_send /
// ssh-pkcs11-client.c send_msg: uint32 length, then the payload). Whatever
// the helper does (never starts, hangs, dies, writes garbage) ends as a
// HelperFailure, never as an exception escaping into the agent.

import type { ChildProcess } from 'node:child_process';
import fs = require('node:fs');
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';

export type HelperFailureKind =
  | 'missing' // not there or not executable
  | 'timeout' // no answer in time (the helper is killed)
  | 'died' // exited or was killed before answering
  | 'protocol' // answered something malformed
  | 'provider' // the helper answered with an error from the middleware/token
  | 'wrong-pin'
  | 'refused'; // the helper declined (e.g. sign with an unknown key)

export interface HelperFailure {
  kind: HelperFailureKind;
  /** One line for the debug log; text from outside is already escaped. */
  message: string;
  /** The error code the helper sent, when it sent one. */
  code?: number;
}

export type HelperResult<T> = { ok: true; value: T } | { ok: false; error: HelperFailure };

export const fail = (
  kind: HelperFailureKind,
  message: string,
  code?: number,
): HelperResult<never> => ({
  ok: false,
  error: { kind, message, code },
});

export class HelperFailureError extends Error {
  constructor(readonly failure: HelperFailure) {
    super(failure.message);
  }
}

/** Refuse frames longer than this (ssh-pkcs11-client.c recv_msg: 256 KiB). */
const MAX_FRAME = 256 * 1024;
/** Keep this much of the helper's stderr for error messages. */
const STDERR_KEEP = 2048;

export interface HelperSpawnOptions {
  /** Short name for messages, e.g. "ssh-sk-helper". */
  name: string;
  path: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

/** Frame a payload: uint32 length, payload. */
export function frame(payload: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(payload.length);
  return Buffer.concat([len, payload]);
}

export class HelperProcess {
  private buf = Buffer.alloc(0);
  private frames: Buffer[] = [];
  private waiter: (() => void) | null = null;
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private spawnError: string | null = null;
  private stderrTail = '';
  private garbled: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /** Resolves when the process has exited (or never started). */
  readonly exited: Promise<void>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      child.on('error', (e) => {
        this.spawnError = errorMessage(e);
        this.wake();
        resolve();
      });
      child.on('close', (code, signal) => {
        this.exitStatus = { code, signal };
        this.wake();
        resolve();
      });
    });
    child.stdin!.on('error', () => {}); // EPIPE: the exit tells the story
    child.stdout!.on('data', (d: Buffer) => this.onData(d));
    child.stderr!.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString('utf8')).slice(-STDERR_KEEP);
    });
  }

  /** Starts the helper, or says why it cannot be (ssh-sk-client.c start_helper: access X_OK). */
  static start(opts: HelperSpawnOptions): HelperResult<HelperProcess> {
    try {
      fs.accessSync(opts.path, fs.constants.X_OK);
    } catch (e) {
      return fail(
        'missing',
        `${opts.name} "${escapeText(opts.path)}" unusable: ${escapeText(errorMessage(e))}`,
      );
    }
    // child_process is loaded on the first helper only: the idle agent does without it.
    const { spawn } = require('node:child_process') as typeof import('node:child_process');
    const child = spawn(opts.path, opts.args ?? [], {
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return { ok: true, value: new HelperProcess(opts.name, child) };
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitStatus === null && this.spawnError === null;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 4) {
      const n = this.buf.readUInt32BE(0);
      if (n > MAX_FRAME) {
        this.garbled = `${this.name} sent a ${n}-byte message`;
        this.kill();
        break;
      }
      if (this.buf.length < 4 + n) break;
      this.frames.push(Buffer.from(this.buf.subarray(4, 4 + n)));
      this.buf = this.buf.subarray(4 + n);
    }
    this.wake();
  }

  /** Why the helper is gone, as a failure. */
  private gone(): HelperFailure {
    if (this.garbled) return { kind: 'protocol', message: this.garbled };
    if (this.spawnError)
      return {
        kind: 'missing',
        message: `${this.name} could not start: ${escapeText(this.spawnError)}`,
      };
    const s = this.exitStatus;
    const how = s?.signal ? `was killed by ${s.signal}` : `exited with status ${s?.code}`;
    const tail = this.stderrTail.trim().split(/\r?\n/).slice(-2).join(' / ');
    return { kind: 'died', message: `${this.name} ${how}${tail ? `: ${escapeText(tail)}` : ''}` };
  }

  /** The helper's own words (its stderr, last lines), escaped, for messages. */
  stderrSummary(): string {
    return escapeText(this.stderrTail.trim().split(/\r?\n/).slice(-2).join(' / '));
  }

  /** Matches the helper's recent stderr (raw: for classifying, never for display). */
  matchStderr(re: RegExp): RegExpMatchArray | null {
    return this.stderrTail.match(re);
  }

  private nextFrame(timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        this.kill();
        reject(
          new HelperFailureError({
            kind: 'timeout',
            message: `${this.name} did not answer in ${timeoutMs} ms (killed)`,
          }),
        );
      }, timeoutMs);
      const check = () => {
        const f = this.frames.shift();
        if (f) {
          clearTimeout(timer);
          resolve(f);
        } else if (!this.running || this.garbled) {
          clearTimeout(timer);
          reject(new HelperFailureError(this.gone()));
        } else {
          this.waiter = check;
        }
      };
      check();
    });
  }

  /**
   * Sends one framed request and waits for one framed reply. Requests run one
   * at a time. `wipe` buffers are zeroed once written (they may hold a PIN).
   * `last` closes stdin after it (a one-shot helper then sees EOF).
   */
  request(
    payload: Buffer,
    timeoutMs: number,
    opts: { wipe?: Buffer[]; last?: boolean } = {},
  ): Promise<HelperResult<Buffer>> {
    const run = async (): Promise<HelperResult<Buffer>> => {
      const framed = frame(payload);
      try {
        if (!this.running) return { ok: false, error: this.gone() };
        this.child.stdin!.write(framed, () => {
          framed.fill(0);
          for (const b of opts.wipe ?? []) b.fill(0);
        });
        if (opts.last) this.child.stdin!.end();
        return { ok: true, value: await this.nextFrame(timeoutMs) };
      } catch (e) {
        if (e instanceof HelperFailureError) return { ok: false, error: e.failure };
        return fail('died', `${this.name}: ${escapeText(errorMessage(e))}`);
      }
    };
    const result = this.queue.then(run);
    this.queue = result;
    return result;
  }

  /** Closes its stdin (the helpers exit on EOF) and waits up to `timeoutMs` for the exit. */
  async finish(timeoutMs: number): Promise<HelperResult<void>> {
    this.child.stdin!.end();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.kill();
      return fail('timeout', `${this.name} did not exit in ${timeoutMs} ms (killed)`);
    }
    const s = this.exitStatus;
    if (this.spawnError || !s || s.code !== 0) return { ok: false, error: this.gone() };
    return { ok: true, value: undefined };
  }

  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}
