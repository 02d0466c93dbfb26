// A notice on screen while the agent waits for the user to do something
// (touch a security key), as OpenSSH's readpass.c notify_start: SSH_ASKPASS
// run with SSH_ASKPASS_PROMPT=none, killed when the wait is over.

import type * as childProcess from 'node:child_process';
import { DEFAULT_ASKPASS, askpassAllowed } from './confirm';

/** Shows `message` through askpass (where askpass may run); returns what takes it down. */
export function startNotice(message: string, env: NodeJS.ProcessEnv = process.env): () => void {
  if (!askpassAllowed(env)) return () => {};
  const { spawn } = require('node:child_process') as typeof childProcess;
  let child: childProcess.ChildProcess;
  try {
    child = spawn(env.SSH_ASKPASS || DEFAULT_ASKPASS, [message], {
      env: { ...env, SSH_ASKPASS_PROMPT: 'none' },
      stdio: 'ignore',
    });
  } catch {
    return () => {};
  }
  child.on('error', () => {});
  return () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
}
