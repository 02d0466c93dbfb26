// Asking the user to confirm a key's use through SSH_ASKPASS, with OpenSSH's
// conventions: SSH_ASKPASS_PROMPT=confirm, the prompt as the only argument,
// and an exit status of 0 with an empty answer or "yes" meaning allowed.

import type * as childProcess from 'node:child_process';

export const DEFAULT_ASKPASS = '/usr/bin/ssh-askpass';

/**
 * May askpass run at all? OpenSSH's rules: only with a display (DISPLAY or
 * WAYLAND_DISPLAY) or SSH_ASKPASS_REQUIRE=force, and never with =never.
 */
export function askpassAllowed(env: NodeJS.ProcessEnv): boolean {
  const require = (env.SSH_ASKPASS_REQUIRE ?? '').toLowerCase();
  if (require === 'never') return false;
  return require === 'force' || !!env.DISPLAY || !!env.WAYLAND_DISPLAY;
}

/** The prompt shown now and those waiting: one dialog at a time, in order. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * Ask through the askpass program; resolves true only on an affirmative answer.
 * Prompts are shown one at a time (the next when the last is answered): several
 * dialogs at once would let a requester hide its prompt behind the owner's.
 */
export function askConfirm(
  prompt: string,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 120_000,
): Promise<boolean> {
  if (!askpassAllowed(env)) return Promise.resolve(false);
  const turn = queue.then(() => showPrompt(prompt, env, timeoutMs));
  queue = turn.catch(() => false);
  return turn;
}

function showPrompt(prompt: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<boolean> {
  const program = env.SSH_ASKPASS || DEFAULT_ASKPASS;
  // Loaded on the first prompt only: an idle agent needs no child_process.
  const { spawn } = require('node:child_process') as typeof childProcess;
  return new Promise((resolve) => {
    let out = '';
    let settled = false;
    const done = (v: boolean) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(v);
      }
    };
    let child;
    try {
      child = spawn(program, [prompt], {
        env: { ...env, SSH_ASKPASS_PROMPT: 'confirm' },
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      return done(false);
    }
    // An unanswered prompt must not hold a signature request for ever.
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      done(false);
    }, timeoutMs);
    timer.unref();
    child.stdout.on('data', (d: Buffer) => {
      if (out.length < 1024) out += d.toString('utf8');
    });
    child.on('error', () => done(false));
    child.on('close', (code) => {
      const answer = out.replace(/\r?\n$/, '');
      done(code === 0 && (answer === '' || answer.toLowerCase() === 'yes'));
    });
  });
}
