// ApprovalWindows (src/agent/approvals.ts): after a "yes", the same key, session,
// origin (local/forwarded) and destination ride on it until LIFE has passed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApprovalScope, ApprovalWindows, approvalDestination } from '../src/agent/approvals';

const MIN = 60_000;
const KEY_A = Buffer.from('key-a');
const KEY_B = Buffer.from('key-b');

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const git: ApprovalScope = {
  key: KEY_A,
  session: 4242,
  forwarded: false,
  destination: 'sshsig:git',
};

test('no window by default: every use asks, as OpenSSH', () => {
  const w = new ApprovalWindows();
  assert.equal(w.approve(git), false);
  assert.equal(w.use(git), undefined);
  assert.deepEqual(w.list(), []);
});

test('a yes covers the same use until LIFE has passed since the yes', () => {
  const c = clock();
  const w = new ApprovalWindows({ lifeMs: 5 * MIN, now: c.now });
  assert.equal(w.use(git), undefined, 'nothing before a yes');
  assert.equal(w.approve(git), true);
  c.advance(2 * MIN);
  const first = w.use(git);
  assert.ok(first);
  assert.equal(first.remainingMs, 3 * MIN);
  assert.equal(first.uses, 1);
  c.advance(3 * MIN - 1);
  assert.equal(w.use(git)?.uses, 2, 'still inside, uses do not extend it');
  assert.equal(w.use(git)?.remainingMs, 1);
  c.advance(1);
  assert.equal(w.use(git), undefined, 'closed exactly at LIFE');
  assert.deepEqual(w.list(), []);
});

test('another session, key, destination or origin is not covered', () => {
  const w = new ApprovalWindows({ lifeMs: MIN, now: clock().now });
  w.approve(git);
  assert.equal(w.use({ ...git, session: 4243 }), undefined, 'another session (setsid)');
  assert.equal(w.use({ ...git, key: KEY_B }), undefined, 'another key');
  assert.equal(w.use({ ...git, destination: 'sshsig:file' }), undefined, 'another namespace');
  assert.equal(w.use({ ...git, destination: 'unknown' }), undefined, 'another kind');
  assert.equal(w.use({ ...git, forwarded: true }), undefined, 'forwarded never rides on local');
  const fwd = { ...git, key: KEY_B, forwarded: true };
  w.approve(fwd);
  assert.equal(w.use({ ...fwd, forwarded: false }), undefined, 'local never rides on forwarded');
  assert.ok(w.use(fwd));
  assert.ok(w.use(git));
});

test('destinations: logins by verified host key, other data by kind and namespace', () => {
  const fakeLogin = {
    kind: 'login' as const,
    method: 'publickey' as const,
    user: 'u',
    service: 'ssh-connection',
    algorithm: 'ssh-ed25519',
    keyBlob: KEY_A,
    sessionId: Buffer.of(1),
  };
  const h1 = approvalDestination(fakeLogin, Buffer.from('host-1'));
  const h2 = approvalDestination(fakeLogin, Buffer.from('host-2'));
  assert.ok(h1 && h2 && h1 !== h2);
  assert.equal(approvalDestination(fakeLogin), null, 'an unverified login gets no window');
  const sig = (namespace: string) => ({
    kind: 'sshsig' as const,
    namespace,
    hashAlgorithm: 'sha512',
    hash: Buffer.alloc(64),
  });
  assert.notEqual(approvalDestination(sig('git')), approvalDestination(sig('file')));
  assert.equal(approvalDestination(sig('git')), approvalDestination(sig('git')));
  assert.equal(approvalDestination({ kind: 'unknown', length: 3 }), 'unknown');

  const c = clock();
  const w = new ApprovalWindows({ lifeMs: MIN, now: c.now });
  w.approve({ ...git, destination: h1 });
  assert.ok(w.use({ ...git, destination: h1 }));
  assert.equal(w.use({ ...git, destination: h2 }), undefined, 'another host');
});

test('a per-key window overrides the agent-wide one; 0 means ask every time', () => {
  const c = clock();
  const w = new ApprovalWindows({ lifeMs: 10 * MIN, now: c.now });
  assert.equal(w.approve(git, 0), false, 'key window 0 beats the agent-wide window');
  assert.equal(w.use(git, 0), undefined);
  const wide = new ApprovalWindows({ lifeMs: 0, now: c.now });
  assert.equal(wide.approve(git, MIN), true, 'a key window without an agent-wide one');
  c.advance(MIN - 1);
  assert.ok(wide.use(git, MIN));
  assert.equal(wide.use(git, 0), undefined, 'setting the key to 0 closes its window at once');
  assert.equal(wide.use(git, MIN), undefined, 'and it stays closed');

  const short = new ApprovalWindows({ lifeMs: 10 * MIN, now: c.now });
  short.approve(git, 2 * MIN);
  c.advance(2 * MIN);
  assert.equal(short.use(git, 2 * MIN), undefined, 'the key window, not the agent-wide one');
});

test('clear() (lock, tsagent approvals clear) ends every window; forgetKey one key', () => {
  const w = new ApprovalWindows({ lifeMs: MIN, now: clock().now });
  w.approve(git);
  w.approve({ ...git, key: KEY_B });
  w.forgetKey(KEY_B);
  assert.equal(w.use({ ...git, key: KEY_B }), undefined);
  assert.ok(w.use(git));
  w.clear();
  assert.equal(w.use(git), undefined);
  assert.deepEqual(w.list(), []);
});

test('list() shows open windows with time left, soonest first, and drops closed ones', () => {
  const c = clock();
  const w = new ApprovalWindows({ lifeMs: 5 * MIN, now: c.now });
  w.approve(git);
  c.advance(MIN);
  w.approve({ ...git, destination: 'sshsig:file' }, 10 * MIN);
  w.approve({ ...git, key: KEY_B }, 30_000);
  w.use(git);
  c.advance(20_000);
  assert.deepEqual(
    w.list().map((a) => [a.destination, a.key.toString(), a.remainingMs, a.uses]),
    [
      ['sshsig:git', 'key-b', 10_000, 0],
      ['sshsig:git', 'key-a', 4 * MIN - 20_000, 1],
      ['sshsig:file', 'key-a', 10 * MIN - 20_000, 0],
    ],
  );
  c.advance(10_000);
  assert.equal(w.list().length, 2);
});

test('a new yes restarts the window; a clock stepped back does not stretch it', () => {
  const c = clock();
  const w = new ApprovalWindows({ lifeMs: MIN, now: c.now });
  w.approve(git);
  c.advance(50_000);
  w.approve(git);
  c.advance(50_000);
  assert.equal(w.use(git)?.remainingMs, 10_000);
  c.advance(-200_000);
  assert.equal(w.use(git), undefined);
});

test('the number of open windows is bounded, the oldest going first', () => {
  const w = new ApprovalWindows({ lifeMs: MIN, now: clock().now, maxEntries: 3 });
  for (let s = 1; s <= 5; s++) w.approve({ ...git, session: s });
  assert.deepEqual(
    w.list().map((a) => a.session),
    [3, 4, 5],
  );
  assert.equal(w.use({ ...git, session: 1 }), undefined);
});

test('the scope is copied: changing the caller buffer later changes nothing', () => {
  const w = new ApprovalWindows({ lifeMs: MIN, now: clock().now });
  const key = Buffer.from('key-a');
  w.approve({ ...git, key });
  key.fill(0);
  assert.ok(w.use(git));
});
