// Asking for the vault passphrase through SSH_ASKPASS when a locked agent is
// used (issue 14, unlock on demand), with OpenSSH's conventions (ssh-add's
// read_passphrase): the prompt as the only argument, no SSH_ASKPASS_PROMPT,
// the answer on standard output up to its first newline, exit 0. A display or
// SSH_ASKPASS_REQUIRE=force is needed, as for confirmations.

import type * as childProcess from 'node:child_process';
import { DEFAULT_ASKPASS, askpassAllowed } from '../agent/confirm';

/** What a passphrase may be at most: a longer answer is not one (and is not kept). */
const MAX_PASSPHRASE = 8192;

/** Resolves with the passphrase, or null when askpass may not run, failed or was cancelled. */
export function askPassphrase(
  prompt: string,
  env: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
): Promise<Buffer | null> {
  if (!askpassAllowed(env)) return Promise.resolve(null);
  const program = env.SSH_ASKPASS || DEFAULT_ASKPASS;
  const { spawn } = require('node:child_process') as typeof childProcess;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const wipe = () => {
      for (const c of chunks) c.fill(0);
    };
    const done = (v: Buffer | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      wipe();
      resolve(v);
    };
    const timer = setTimeout(() => {
      child?.kill('SIGTERM');
      done(null);
    }, timeoutMs);
    timer.unref();
    const childEnv = { ...env };
    delete childEnv.SSH_ASKPASS_PROMPT; // a passphrase, not a confirmation
    let child: childProcess.ChildProcess | undefined;
    try {
      child = spawn(program, [prompt], { env: childEnv, stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return done(null);
    }
    child.stdout!.on('data', (d: Buffer) => {
      size += d.length;
      chunks.push(d);
    });
    child.on('error', () => done(null));
    child.on('close', (code) => {
      if (code !== 0 || size > MAX_PASSPHRASE) return done(null);
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(0x0a);
      const line = Buffer.from(all.subarray(0, nl < 0 ? all.length : nl));
      all.fill(0);
      const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
      const pass = Buffer.from(line.subarray(0, end));
      line.fill(0);
      // An empty answer is a cancel: no vault has an empty passphrase.
      if (pass.length === 0) return done(null);
      done(pass);
    });
  });
}
