// Linux process facts Node has no API for: the peer of a Unix socket
// (SO_PEERCRED) and PR_SET_DUMPABLE. Reached through libc with koffi, which
// ships prebuilt and is loaded only when first needed.

import fs = require('node:fs');
import type * as net from 'node:net';
import os = require('node:os');
import { errorMessage } from '../ssh/error';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * SOL_SOCKET and SO_PEERCRED differ by architecture (the kernel's
 * arch/ARCH/include/uapi/asm/socket.h): the asm-generic values on most, others on
 * MIPS and PowerPC. An architecture not listed gets no guess.
 */
export function peerCredConstants(
  arch: string = process.arch,
): { level: number; name: number } | undefined {
  switch (arch) {
    case 'x64':
    case 'ia32':
    case 'arm':
    case 'arm64':
    case 'riscv64':
    case 'loong64':
    case 's390':
    case 's390x':
      return { level: 1, name: 17 };
    case 'mips':
    case 'mipsel':
    case 'mips64el':
      return { level: 0xffff, name: 18 };
    case 'ppc':
    case 'ppc64':
      return { level: 1, name: 21 };
    default:
      return undefined;
  }
}

const PR_SET_DUMPABLE = 4;

type Libc = {
  getsockopt: (fd: number, level: number, name: number, buf: Buffer, len: number[]) => number;
  prctl: (option: number, arg2: number, arg3: number, arg4: number, arg5: number) => number;
};
let libc: Libc | null | undefined;
/** Why libc could not be reached (for the refusal's log line). */
let libcError = '';

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (process.platform !== 'linux') {
    libcError = `no SO_PEERCRED on ${process.platform}`;
    return libc;
  }
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
  } catch (e) {
    libcError = `cannot load libc through koffi: ${errorMessage(e)}`;
    libc = null;
  }
  return libc;
}

/**
 * The pid/uid/gid of the process at the other end of a Unix socket. Throws,
 * saying why, when they cannot be read: the caller refuses the connection then.
 */
export function peerCredentials(socket: net.Socket): PeerCredentials {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const c = loadLibc();
  if (!c) throw new Error(libcError);
  const k = peerCredConstants();
  if (!k) throw new Error(`SO_PEERCRED is not known for architecture ${process.arch}`);
  if (typeof fd !== 'number' || fd < 0) throw new Error('the socket has no file descriptor');
  const buf = Buffer.alloc(12);
  const len = [12];
  if (c.getsockopt(fd, k.level, k.name, buf, len) !== 0) throw new Error('getsockopt failed');
  if (len[0] !== 12) throw new Error(`getsockopt returned ${len[0]} bytes, not a struct ucred`);
  // struct ucred is three 32-bit fields in the machine's byte order.
  const le = os.endianness() === 'LE';
  const i32 = (o: number) => (le ? buf.readInt32LE(o) : buf.readInt32BE(o));
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  return { pid: i32(0), uid: u32(4), gid: u32(8) };
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
