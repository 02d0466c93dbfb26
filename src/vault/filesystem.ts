// The vault's file system: the calls the store makes (injectable, so tests can
// simulate a full disk or a failing fsync), sshd's StrictModes checks of the
// vault and its directory, and how fs errors are told to the user.
import fs = require('node:fs');
import os = require('node:os');
import { errorMessage } from '../ssh/error';
import { VaultError } from './error';

/** The fs calls the store makes, injectable so tests can simulate a full disk or a failing fsync. */
export interface VaultFs {
  openSync: typeof fs.openSync;
  writeSync: (fd: number, buf: Buffer, off: number, len: number) => number;
  fsyncSync: typeof fs.fsyncSync;
  closeSync: typeof fs.closeSync;
  fstatSync: (fd: number) => fs.Stats;
  statSync: (p: string) => fs.Stats;
  readSync: (fd: number, buf: Buffer, off: number, len: number, pos: number | null) => number;
  renameSync: typeof fs.renameSync;
  linkSync: typeof fs.linkSync;
  unlinkSync: typeof fs.unlinkSync;
  readdirSync: (p: string) => string[];
  mkdirSync: (p: string, opts: { recursive?: boolean; mode?: number }) => unknown;
}

export const realFs: VaultFs = {
  openSync: fs.openSync,
  writeSync: (fd, buf, off, len) => fs.writeSync(fd, buf, off, len),
  fsyncSync: fs.fsyncSync,
  closeSync: fs.closeSync,
  fstatSync: (fd) => fs.fstatSync(fd),
  statSync: (p) => fs.statSync(p),
  readSync: (fd, buf, off, len, pos) => fs.readSync(fd, buf, off, len, pos),
  renameSync: fs.renameSync,
  linkSync: fs.linkSync,
  unlinkSync: fs.unlinkSync,
  readdirSync: (p) => fs.readdirSync(p),
  mkdirSync: (p, opts) => fs.mkdirSync(p, opts),
};

export function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

/** A human reason for an fs error, with the errno name for searching. */
export function describeFsError(err: unknown): string {
  const code = errnoCode(err);
  const known: Record<string, string> = {
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    EROFS: 'read-only file system',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EIO: 'input/output error',
    ENOENT: 'no such file or directory',
  };
  if (code && known[code]) return `${known[code]} (${code})`;
  return errorMessage(err);
}

/** "readable by group and others, writable by others" for the bits StrictModes forbids. */
function describeLooseMode(mode: number): string {
  const who = (g: number, o: number) =>
    [mode & g ? 'group' : '', mode & o ? 'others' : ''].filter(Boolean).join(' and ');
  const parts: string[] = [];
  if (mode & 0o044) parts.push(`readable by ${who(0o040, 0o004)}`);
  if (mode & 0o022) parts.push(`writable by ${who(0o020, 0o002)}`);
  return parts.join(', ');
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/**
 * sshd StrictModes for the vault and its directory: owned by us, not readable
 * or writable by group/others (execute alone is allowed on the directory).
 */
export function checkPrivate(
  p: string,
  st: fs.Stats,
  kind: 'vault' | 'vault directory',
  uid: number,
): void {
  if (kind === 'vault' && !st.isFile())
    throw new VaultError('PERMISSIONS', `vault ${p} is not a regular file`);
  if (kind === 'vault directory' && !st.isDirectory())
    throw new VaultError('PERMISSIONS', `vault directory ${p} is not a directory`);
  if (st.uid !== uid) {
    const me = safeUserName() ?? String(uid);
    throw new VaultError(
      'PERMISSIONS',
      `${kind} ${p} is owned by uid ${st.uid}, not by you (uid ${uid}): run chown ${me} ${p}`,
    );
  }
  if (st.mode & 0o066) {
    const fix = kind === 'vault' ? `chmod 600 ${p}` : `chmod 700 ${p}`;
    throw new VaultError(
      'PERMISSIONS',
      `${kind} ${p} is ${describeLooseMode(st.mode)} (mode ${octal(st.mode)}): run ${fix}`,
    );
  }
}

function safeUserName(): string | undefined {
  try {
    return os.userInfo().username;
  } catch {
    return undefined;
  }
}

export function currentUid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}
