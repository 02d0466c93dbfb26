// The terminal session a requesting process belongs to: approval windows are
// per session (issue 14), so a "yes" given for one shell does not cover a
// process started elsewhere (another terminal, `setsid`, a cron job).

import fs = require('node:fs');

/**
 * Field 6 ("session") of a /proc/PID/stat line (proc(5)):
 *   pid (comm) state ppid pgrp session …
 * comm may hold spaces and parentheses, so the fields are counted after the
 * last ')'. Anything else yields undefined, never a throw.
 */
export function parseStatSession(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0 || !/^\d+ \(/.test(stat)) return undefined;
  const fields = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // fields[0] is state (field 3), so session (field 6) is fields[3].
  const session = fields[3];
  if (fields.length < 4 || !/^\d{1,10}$/.test(session)) return undefined;
  const n = Number(session);
  return n <= 0x7fffffff ? n : undefined;
}

/** The session id of a live process, or undefined when it cannot be read. */
export function processSession(pid: number): number | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    return parseStatSession(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}
