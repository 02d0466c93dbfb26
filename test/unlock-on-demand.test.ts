// UnlockOnDemand (src/agent/unlock-on-demand.ts), with a fake prompt and vault:
// one prompt for concurrent requests, a back-off after a failed one, never a
// prompt for a forwarded connection or when disabled.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_UNLOCK_BACKOFF_MS,
  UnlockOnDemand,
  UnlockOnDemandOptions,
  UnlockRequester,
} from '../src/agent/unlock-on-demand';

const local = (description = 'ssh (pid 100)'): UnlockRequester => ({
  forwarded: false,
  description,
});
const forwarded: UnlockRequester = { forwarded: true, description: 'ssh (pid 200)' };

/** A prompt the test answers by hand, and a vault with one passphrase. */
function fakes(opts: Partial<UnlockOnDemandOptions> = {}) {
  let t = 1_000_000;
  const prompts: UnlockRequester[] = [];
  const tried: Buffer[] = [];
  let answer: (v: Buffer | null) => void = () => {};
  const u = new UnlockOnDemand({
    askPassphrase: (r) => {
      prompts.push(r);
      return new Promise((resolve) => (answer = resolve));
    },
    tryUnlock: async (p) => {
      tried.push(p);
      return p.toString() === 'right';
    },
    now: () => t,
    ...opts,
  });
  return {
    u,
    prompts,
    tried,
    answer: (v: string | null) => answer(v === null ? null : Buffer.from(v)),
    advance: (ms: number) => (t += ms),
  };
}

const tick = () => new Promise((r) => setImmediate(r));

test('three parallel requests share one prompt and are all answered unlocked', async () => {
  const f = fakes();
  const waiting = [f.u.request(local('ssh a')), f.u.request(local('ssh b')), f.u.request(local())];
  await tick();
  assert.equal(f.prompts.length, 1);
  assert.equal(f.prompts[0].description, 'ssh a', 'the prompt names the first requester');
  f.answer('right');
  assert.deepEqual(await Promise.all(waiting), [
    { unlocked: true },
    { unlocked: true },
    { unlocked: true },
  ]);
  assert.equal(f.tried.length, 1);
  assert.ok(f.tried[0].equals(Buffer.alloc(5)), 'the passphrase is wiped after use');
  assert.equal(f.u.backoffLeftMs(), 0);
});

test('a later request (the agent locked again) gets a new prompt', async () => {
  const f = fakes();
  const first = f.u.request(local());
  await tick();
  f.answer('right');
  await first;
  const second = f.u.request(local());
  await tick();
  assert.equal(f.prompts.length, 2);
  f.answer('right');
  assert.deepEqual(await second, { unlocked: true });
});

for (const [what, answer, reason] of [
  ['cancelled', null, 'cancelled'],
  ['wrong', 'wrong', 'wrong'],
] as const)
  test(`a ${what} prompt answers all waiting as locked, then no prompt for 30 s`, async () => {
    const f = fakes();
    const waiting = [f.u.request(local()), f.u.request(local())];
    await tick();
    f.answer(answer);
    for (const o of await Promise.all(waiting)) assert.deepEqual(o, { unlocked: false, reason });
    assert.equal(f.u.backoffLeftMs(), DEFAULT_UNLOCK_BACKOFF_MS);
    f.advance(DEFAULT_UNLOCK_BACKOFF_MS - 1);
    for (let i = 0; i < 20; i++)
      assert.deepEqual(await f.u.request(local()), { unlocked: false, reason: 'backoff' });
    assert.equal(f.prompts.length, 1, 'a loop does not flood the screen');
    f.advance(1);
    const again = f.u.request(local());
    await tick();
    assert.equal(f.prompts.length, 2, 'after the back-off a request prompts again');
    f.answer('right');
    assert.deepEqual(await again, { unlocked: true });
    assert.equal(f.u.backoffLeftMs(), 0);
  });

test('a forwarded connection never causes a prompt, nor joins one', async () => {
  const f = fakes();
  assert.deepEqual(await f.u.request(forwarded), { unlocked: false, reason: 'forwarded' });
  assert.equal(f.prompts.length, 0);
  const mine = f.u.request(local());
  await tick();
  assert.deepEqual(await f.u.request(forwarded), { unlocked: false, reason: 'forwarded' });
  f.answer('right');
  assert.deepEqual(await mine, { unlocked: true });
  assert.equal(f.prompts.length, 1);
});

test('disabled (--no-unlock-prompt): never a prompt', async () => {
  const f = fakes({ enabled: false });
  assert.deepEqual(await f.u.request(local()), { unlocked: false, reason: 'disabled' });
  assert.equal(f.prompts.length, 0);
});

test('a prompt that fails to run counts as cancelled; a failing unlock as wrong', async () => {
  const broken = new UnlockOnDemand({
    askPassphrase: async () => {
      throw new Error('no askpass');
    },
    tryUnlock: async () => true,
  });
  assert.deepEqual(await broken.request(local()), { unlocked: false, reason: 'cancelled' });
  assert.ok(broken.backoffLeftMs() > 0);
  let given: Buffer | undefined;
  const failing = new UnlockOnDemand({
    askPassphrase: async () => Buffer.from('secret'),
    tryUnlock: async (p) => {
      given = p;
      throw new Error('vault unreadable');
    },
  });
  assert.deepEqual(await failing.request(local()), { unlocked: false, reason: 'wrong' });
  assert.ok(given?.equals(Buffer.alloc(6)), 'wiped even when the unlock threw');
});

test('reset() ends a back-off (unlocked some other way); the back-off is injectable', async () => {
  const f = fakes({ backoffMs: 5_000 });
  const p = f.u.request(local());
  await tick();
  f.answer(null);
  await p;
  assert.equal(f.u.backoffLeftMs(), 5_000);
  f.u.reset();
  assert.equal(f.u.backoffLeftMs(), 0);
  const q = f.u.request(local());
  await tick();
  assert.equal(f.prompts.length, 2);
  f.answer('right');
  assert.deepEqual(await q, { unlocked: true });
});
