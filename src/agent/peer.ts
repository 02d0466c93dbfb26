// Linux process facts Node has no API for: the peer of a Unix socket
// (SO_PEERCRED) and PR_SET_DUMPABLE. Reached through libc with koffi, which
// ships prebuilt and is loaded only when first needed.

import * as fs from 'node:fs';
import type * as net from 'node:net';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const PR_SET_DUMPABLE = 4;

type Libc = {
  getsockopt: (fd: number, level: number, name: number, buf: Buffer, len: number[]) => number;
  prctl: (option: number, arg2: number, arg3: number, arg4: number, arg5: number) => number;
};
let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== 'linux') return libc;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require('koffi');
    const lib = koffi.load('libc.so.6');
    libc = {
      getsockopt: lib.func(
        'int getsockopt(int, int, int, _Out_ uint8_t *buf, _Inout_ uint32_t *len)',
      ),
      prctl: lib.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)'),
    };
  } catch {
    libc = null;
  }
  return libc;
}

/** The pid/uid/gid of the process at the other end of a Unix socket, or undefined. */
export function peerCredentials(socket: net.Socket): PeerCredentials | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const c = loadLibc();
  if (!c || typeof fd !== 'number' || fd < 0) return undefined;
  const buf = Buffer.alloc(12);
  if (c.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, [12]) !== 0) return undefined;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

/** The command line of a process, for prompts and logs ("" if it cannot be read). */
export function processCommand(pid: number): string {
  try {
    return fs
      .readFileSync(`/proc/${pid}/cmdline`)
      .toString('utf8')
      .replace(/\0+$/, '')
      .split('\0')
      .join(' ');
  } catch {
    return '';
  }
}

/** Forbid core dumps and ptrace by same-uid processes, as OpenSSH's agent does. */
export function disableDumping(): boolean {
  const c = loadLibc();
  return !!c && c.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) === 0;
}
