// How many connections the agent can hold: its open-file limit (RLIMIT_NOFILE,
// as /proc/self/limits shows it) less what the agent itself needs.

import fs = require('node:fs');

/**
 * Descriptors kept free for the agent's own files: the listening socket, stdio,
 * node's own (epoll, eventfd, pipes), the vault and its backup, the audit and
 * debug logs, an askpass child's pipes.
 */
export const FILE_HEADROOM = 64;

/** The soft limit on open files, or undefined if it cannot be read (or is unlimited). */
export function openFileLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  try {
    text ??= fs.readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
}

/** Connections that fit under a file limit (at least one: the owner must get in). */
export function connectionsForFiles(fileLimit: number | undefined): number {
  if (fileLimit === undefined) return Infinity;
  return Math.max(1, fileLimit - FILE_HEADROOM);
}
