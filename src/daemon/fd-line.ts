// One line from a file descriptor, read a byte at a time so that nothing after
// it is consumed (the next line is the next reader's): the configuration pipe
// of the background agent, and --passphrase-fd.

import fs = require('node:fs');

/**
 * The bytes before the next `\n` (not included), and whether the end of input
 * came first. A non-blocking fd is waited on; any other read error is thrown.
 */
export function readLineSync(fd: number): { line: Buffer; ended: boolean } {
  let buf = Buffer.alloc(256);
  let len = 0;
  const one = Buffer.alloc(1);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, one, 0, 1, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      continue;
    }
    if (n === 0 || one[0] === 0x0a) {
      const line = Buffer.from(buf.subarray(0, len));
      buf.fill(0); // the line may be a passphrase: no copy left behind
      one.fill(0);
      return { line, ended: n === 0 };
    }
    if (len === buf.length) {
      const bigger = Buffer.alloc(buf.length * 2);
      buf.copy(bigger);
      buf.fill(0);
      buf = bigger;
    }
    buf[len++] = one[0];
  }
}
