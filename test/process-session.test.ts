// parseStatSession / processSession (src/agent/process-session.ts): field 6 of
// /proc/PID/stat, checked against vectors, `ps -o sess=` and a `setsid` child.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseStatSession, processSession } from '../src/agent/process-session';
import { baseEnv, run } from './fixtures/run';

const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x5eed;

const vectors: [string, number | undefined][] = [
  ['1234 (bash) S 1200 1234 1234 34816 5678 4194304 0 0', 1234],
  ['77 (ssh-keygen) R 70 77 12 0 -1', 12],
  ['9 (a) b) c (d) S 1 2 3 4', 3],
  ['9 (x 1 2 3 4 5) S 1 2 99 4', 99],
  ['', undefined],
  ['garbage', undefined],
  ['12 bash S 1 2 3', undefined],
  ['12 (bash) S 1 2', undefined],
  ['12 (bash) S 1 2 -3 4', undefined],
  ['12 (bash) S 1 2 99999999999 4', undefined],
];
for (const [stat, want] of vectors)
  test(`parseStatSession ${JSON.stringify(stat)}`, () =>
    assert.equal(parseStatSession(stat), want));

test('fast-check: never throws', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (s) => {
      const v = parseStatSession(s);
      assert.ok(v === undefined || (Number.isInteger(v) && v >= 0));
    }),
    { numRuns: 2000, seed: SEED },
  );
});

test('processSession agrees with ps, and a setsid child is in another session', async () => {
  const ps = await run('/bin/ps', ['-o', 'sess=', '-p', String(process.pid)], { env: baseEnv() });
  assert.equal(processSession(process.pid), Number(ps.stdout.trim()));
  const child = await run('/usr/bin/setsid', ['/bin/sh', '-c', 'cat /proc/$$/stat; echo $$'], {
    env: baseEnv(),
  });
  const [stat, pid] = child.stdout.trim().split('\n');
  assert.equal(parseStatSession(stat), Number(pid), 'setsid makes the child a session leader');
  assert.notEqual(parseStatSession(stat), processSession(process.pid));
  assert.equal(processSession(0), undefined);
  assert.equal(processSession(2 ** 31 - 1), undefined);
});
