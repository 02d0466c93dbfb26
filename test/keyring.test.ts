// Unit tests of the in-memory Keyring (src/agent/keyring.ts): order, re-add,
// removal, lifetimes (fake clock and one real timer), default lifetime, confirm,
// lock/unlock with serialised, growing delays, maxsign and the identity limit.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { AddResult, Keyring, KeyringOptions, RequestContext } from '../src/agent/keyring';
import { Constraints, Request, decodeRequest } from '../src/agent/protocol';
import type { PrivateKey } from '../src/ssh/privatekey';
import { verifySignature } from '../src/ssh/signature';

// ---------------------------------------------------------------------------
// Keys, built the way the agent receives them (ADD_IDENTITY through the decoder)
// ---------------------------------------------------------------------------

const cat = (...b: Buffer[]) => Buffer.concat(b);
const str = (v: Buffer | string) => {
  const b = typeof v === 'string' ? Buffer.from(v) : v;
  const n = Buffer.alloc(4);
  n.writeUInt32BE(b.length);
  return cat(n, b);
};
const mp = (m: Buffer) => str(m[0] & 0x80 ? cat(Buffer.of(0), m) : m);
const b64u = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');

function parseAdd(keyType: string, fields: Buffer): PrivateKey {
  const req = decodeRequest(cat(Buffer.of(17), str(keyType), fields, str('')));
  assert.equal(req.type, 'add', JSON.stringify(req));
  return (req as Extract<Request, { type: 'add' }>).key;
}

function ed25519(): PrivateKey {
  const j = crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const pk = b64u(j.x);
  return parseAdd('ssh-ed25519', cat(str(pk), str(cat(b64u(j.d), pk))));
}

function rsa(): PrivateKey {
  const j = crypto
    .generateKeyPairSync('rsa', { modulusLength: 1024 })
    .privateKey.export({ format: 'jwk' });
  const [n, e, d, qi, p, q] = [j.n, j.e, j.d, j.qi, j.p, j.q].map(b64u);
  return parseAdd('ssh-rsa', cat(mp(n), mp(e), mp(d), mp(qi), mp(p), mp(q)));
}

const [A, B, C, D] = [ed25519(), ed25519(), ed25519(), ed25519()];
const R = rsa();

const NONE: Constraints = { extensions: [] };
/** Why an add was refused ('' if it was not). */
const refusal = (r: AddResult): string => (r.ok ? '' : r.reason);
const CTX: RequestContext = {};
const buf = (s: string) => Buffer.from(s);
const comments = (k: Keyring) => k.list().map((i) => i.comment.toString());
const blobs = (k: Keyring) => k.list().map((i) => i.keyBlob.toString('base64'));
const b64 = (k: PrivateKey) => k.publicBlob.toString('base64');

/** A keyring with a fake clock (ms), cleared after the test so no timer outlives it. */
function fakeClock(opts: KeyringOptions<RequestContext> = {}) {
  const clock = { t: 1_000_000 };
  const kr = new Keyring({ ...opts, now: () => clock.t });
  return { kr, clock };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

// ---------------------------------------------------------------------------

describe('add / list / remove', () => {
  test('list keeps insertion order, with blobs and comments', () => {
    const kr = new Keyring();
    assert.deepEqual(kr.list(), []);
    for (const [k, c] of [
      [A, 'a'],
      [B, 'b'],
      [C, 'c'],
    ] as const)
      assert.deepEqual(kr.add(k, buf(c), NONE), { ok: true });
    assert.deepEqual(comments(kr), ['a', 'b', 'c']);
    assert.deepEqual(blobs(kr), [b64(A), b64(B), b64(C)]);
    assert.equal(kr.size, 3);
    kr.clear();
  });

  test('comments are kept as bytes', () => {
    const kr = new Keyring();
    kr.add(A, Buffer.from([0xff, 0x00, 0x80]), NONE);
    assert.deepEqual(kr.list()[0].comment, Buffer.from([0xff, 0x00, 0x80]));
  });

  test('re-add updates the comment and does not duplicate', () => {
    const kr = new Keyring();
    kr.add(A, buf('a'), NONE);
    kr.add(B, buf('b'), NONE);
    assert.deepEqual(kr.add(B, buf('b2'), NONE), { ok: true });
    assert.equal(kr.size, 2);
    assert.deepEqual(comments(kr).sort(), ['a', 'b2']);
  });

  test('re-add keeps the identity in its position', () => {
    const kr = new Keyring();
    kr.add(A, buf('a'), NONE);
    kr.add(B, buf('b'), NONE);
    kr.add(C, buf('c'), NONE);
    kr.add(A, buf('a2'), NONE);
    assert.deepEqual(comments(kr), ['a2', 'b', 'c']);
  });

  test('re-add replaces the constraints (confirm on, lifetime off)', () => {
    const { kr, clock } = fakeClock();
    kr.add(A, buf('a'), { lifetime: 10, extensions: [] });
    kr.add(A, buf('a'), { confirm: true, extensions: [] });
    assert.equal(kr.find(A.publicBlob)?.confirm, true);
    assert.equal(kr.find(A.publicBlob)?.expiresAt, undefined);
    clock.t += 3600_000;
    assert.deepEqual(comments(kr), ['a']);
    kr.add(A, buf('a'), NONE);
    assert.equal(kr.find(A.publicBlob)?.confirm, false);
    kr.clear();
  });

  test('remove one, remove unknown, remove twice', () => {
    const kr = new Keyring();
    kr.add(A, buf('a'), NONE);
    kr.add(B, buf('b'), NONE);
    kr.add(C, buf('c'), NONE);
    assert.equal(kr.remove(B.publicBlob), true);
    assert.deepEqual(comments(kr), ['a', 'c']);
    assert.equal(kr.remove(B.publicBlob), false);
    assert.equal(kr.remove(D.publicBlob), false);
    assert.equal(kr.remove(Buffer.alloc(0)), false);
    assert.equal(kr.find(B.publicBlob), undefined);
  });

  test('removeAll empties the keyring, also when already empty', () => {
    const { kr } = fakeClock();
    kr.add(A, buf('a'), { lifetime: 100, extensions: [] });
    kr.add(B, buf('b'), NONE);
    assert.equal(kr.removeAll(), true);
    assert.deepEqual(kr.list(), []);
    assert.equal(kr.size, 0);
    assert.equal(kr.removeAll(), true);
  });

  test('maxsign is refused and nothing is added', () => {
    const kr = new Keyring();
    const err = kr.add(A, buf('a'), { maxSign: 5, extensions: [] });
    assert.equal(err.ok, false);
    assert.equal(kr.size, 0);
    assert.equal(kr.add(A, buf('a'), { maxSign: 0, extensions: [] }).ok, false);
  });

  test('identity limit: new keys refused at the limit, re-adds allowed', () => {
    const kr = new Keyring({ maxIdentities: 2 });
    assert.deepEqual(kr.add(A, buf('a'), NONE), { ok: true });
    assert.deepEqual(kr.add(B, buf('b'), NONE), { ok: true });
    assert.match(refusal(kr.add(C, buf('c'), NONE)), /limit/);
    assert.deepEqual(
      kr.add(A, buf('a2'), NONE),
      { ok: true },
      're-adding an existing key is not a new one',
    );
    assert.equal(kr.size, 2);
    kr.remove(B.publicBlob);
    assert.deepEqual(kr.add(C, buf('c'), NONE), { ok: true });
    assert.deepEqual(comments(kr).sort(), ['a2', 'c']);
  });

  test('identity limit does not count expired identities', () => {
    const { kr, clock } = fakeClock({ maxIdentities: 1 });
    kr.add(A, buf('a'), { lifetime: 1, extensions: [] });
    clock.t += 2000;
    assert.deepEqual(kr.add(B, buf('b'), NONE), { ok: true });
    kr.clear();
  });
});

describe('lifetimes', () => {
  test('an identity expires exactly at its lifetime (fake clock)', async () => {
    const { kr, clock } = fakeClock();
    kr.add(A, buf('a'), { lifetime: 10, extensions: [] });
    kr.add(B, buf('b'), NONE);
    assert.equal(kr.find(A.publicBlob)?.expiresAt, clock.t + 10_000);
    clock.t += 9_999;
    assert.deepEqual(comments(kr), ['a', 'b']);
    clock.t += 1;
    assert.deepEqual(comments(kr), ['b']);
    assert.equal(kr.find(A.publicBlob), undefined);
    assert.equal(kr.remove(A.publicBlob), false);
    const res = await kr.sign(A.publicBlob, buf('x'), 0, CTX);
    assert.deepEqual(res.ok ? 'ok' : res.reason, 'unknown-key');
    kr.clear();
  });

  test('an expired identity cannot sign even before anyone lists', async () => {
    const { kr, clock } = fakeClock();
    kr.add(A, buf('a'), { lifetime: 5, extensions: [] });
    clock.t += 5_000;
    const res = await kr.sign(A.publicBlob, buf('x'), 0, CTX);
    assert.equal(res.ok, false);
    kr.clear();
  });

  test('explicit lifetime 0 expires at once', () => {
    const { kr } = fakeClock({ defaultLifetime: 60 });
    assert.deepEqual(kr.add(A, buf('a'), { lifetime: 0, extensions: [] }), { ok: true });
    assert.deepEqual(kr.list(), []);
    kr.clear();
  });

  test('default lifetime applies to identities added without one', () => {
    const { kr, clock } = fakeClock({ defaultLifetime: 5 });
    kr.add(A, buf('a'), NONE);
    kr.add(B, buf('b'), { lifetime: 100, extensions: [] });
    kr.add(C, buf('c'), { confirm: true, extensions: [] });
    clock.t += 4_999;
    assert.deepEqual(comments(kr), ['a', 'b', 'c']);
    clock.t += 1;
    assert.deepEqual(comments(kr), ['b'], 'own lifetime overrides the default');
    clock.t += 95_000;
    assert.deepEqual(comments(kr), []);
    kr.clear();
  });

  test('default lifetime 0 means no expiry', () => {
    const { kr, clock } = fakeClock({ defaultLifetime: 0 });
    kr.add(A, buf('a'), NONE);
    assert.equal(kr.find(A.publicBlob)?.expiresAt, undefined);
    clock.t += 10 * 365 * 86400_000;
    assert.deepEqual(comments(kr), ['a']);
  });

  test('a real 1 s lifetime: the timer removes the identity', async () => {
    // The keyring clock stands still, so only the real timer can remove it.
    const { kr } = fakeClock();
    kr.add(A, buf('a'), { lifetime: 1, extensions: [] });
    kr.add(B, buf('b'), NONE);
    assert.equal(kr.size, 2);
    const deadline = Date.now() + 20_000;
    while (kr.size === 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(kr.size, 1, 'the 1 s identity should be gone');
    assert.deepEqual(comments(kr), ['b']);
  });

  test('lifetimes beyond the setTimeout limit (~24.8 days) are not cut short', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { kr, clock } = fakeClock();
    kr.add(A, buf('a'), { lifetime: 30 * 86400, extensions: [] });
    const step = 2 ** 31 - 1;
    clock.t += step;
    t.mock.timers.tick(step);
    assert.deepEqual(comments(kr), ['a'], 'still 5 days to go');
    clock.t += 30 * 86400_000 - step;
    assert.deepEqual(comments(kr), []);
    kr.clear();
  });
});

describe('confirm', () => {
  test('allowed: the confirmer sees the entry, and the signature verifies', async () => {
    const asked: string[] = [];
    const kr = new Keyring({
      confirm: async (entry) => {
        asked.push(entry.comment.toString());
        return true;
      },
    });
    kr.add(A, buf('needs-ok'), { confirm: true, extensions: [] });
    kr.add(B, buf('free'), NONE);
    const data = buf('data');
    const res = await kr.sign(A.publicBlob, data, 0, CTX);
    assert.ok(res.ok);
    assert.ok(verifySignature(A.publicBlob, data, res.signature));
    assert.deepEqual(asked, ['needs-ok']);
    assert.ok((await kr.sign(B.publicBlob, data, 0, CTX)).ok);
    assert.deepEqual(asked, ['needs-ok'], 'no prompt for an unconstrained key');
  });

  test('refused by the user', async () => {
    const kr = new Keyring({ confirm: async () => false });
    kr.add(A, buf('a'), { confirm: true, extensions: [] });
    const res = await kr.sign(A.publicBlob, buf('d'), 0, CTX);
    assert.equal(res.ok ? 'ok' : res.reason, 'refused');
  });

  test('refused when there is no confirmer at all', async () => {
    const kr = new Keyring();
    kr.add(A, buf('a'), { confirm: true, extensions: [] });
    const res = await kr.sign(A.publicBlob, buf('d'), 0, CTX);
    assert.equal(res.ok ? 'ok' : res.reason, 'refused');
  });

  /** A confirmer whose answer the test gives later. */
  function pendingConfirm() {
    let answer!: (ok: boolean) => void;
    let asked!: () => void;
    const askedP = new Promise<void>((r) => (asked = r));
    const confirm = () =>
      new Promise<boolean>((r) => {
        answer = r;
        asked();
      });
    return { confirm, asked: askedP, answer: (ok: boolean) => answer(ok) };
  }

  test('key removed while the prompt is open: refused even if the user says yes', async () => {
    const p = pendingConfirm();
    const kr = new Keyring({ confirm: p.confirm });
    kr.add(A, buf('a'), { confirm: true, extensions: [] });
    const signing = kr.sign(A.publicBlob, buf('d'), 0, CTX);
    await p.asked;
    assert.equal(kr.remove(A.publicBlob), true);
    p.answer(true);
    const res = await signing;
    assert.equal(res.ok ? 'ok' : res.reason, 'refused');
  });

  test('agent locked while the prompt is open: refused', async () => {
    const p = pendingConfirm();
    const kr = new Keyring({ confirm: p.confirm, unlockDelayMs: 1 });
    kr.add(A, buf('a'), { confirm: true, extensions: [] });
    const signing = kr.sign(A.publicBlob, buf('d'), 0, CTX);
    await p.asked;
    assert.equal(await kr.lock(buf('pw')), true);
    p.answer(true);
    assert.equal((await signing).ok, false);
  });

  test('key re-added while the prompt is open: the old request is refused', async () => {
    const p = pendingConfirm();
    const kr = new Keyring({ confirm: p.confirm });
    kr.add(A, buf('a'), { confirm: true, extensions: [] });
    const signing = kr.sign(A.publicBlob, buf('d'), 0, CTX);
    await p.asked;
    kr.add(A, buf('a'), NONE);
    p.answer(true);
    assert.equal((await signing).ok, false);
  });
});

describe('signing', () => {
  test('unknown key', async () => {
    const kr = new Keyring();
    kr.add(A, buf('a'), NONE);
    const res = await kr.sign(B.publicBlob, buf('d'), 0, CTX);
    assert.equal(res.ok ? 'ok' : res.reason, 'unknown-key');
  });

  test('RSA flags choose the signature algorithm', async () => {
    const kr = new Keyring();
    kr.add(R, buf('r'), NONE);
    const data = buf('rsa data');
    for (const [flags, name] of [
      [0, 'ssh-rsa'],
      [2, 'rsa-sha2-256'],
      [4, 'rsa-sha2-512'],
    ] as const) {
      const res = await kr.sign(R.publicBlob, data, flags, CTX);
      assert.ok(res.ok);
      assert.equal(res.signature.subarray(4, 4 + res.signature.readUInt32BE(0)).toString(), name);
      assert.ok(verifySignature(R.publicBlob, data, res.signature));
    }
  });
});

describe('lock / unlock', () => {
  test('while locked: empty list, and sign/add/remove/removeAll fail; unlock restores', async () => {
    const kr = new Keyring({ unlockDelayMs: 1 });
    kr.add(A, buf('a'), NONE);
    kr.add(B, buf('b'), NONE);
    assert.equal(await kr.lock(buf('pw')), true);
    assert.equal(kr.locked, true);
    assert.deepEqual(kr.list(), []);
    const res = await kr.sign(A.publicBlob, buf('d'), 0, CTX);
    assert.equal(res.ok ? 'ok' : res.reason, 'locked');
    assert.equal(kr.add(C, buf('c'), NONE).ok, false);
    assert.equal(kr.remove(A.publicBlob), false);
    assert.equal(kr.removeAll(), false);
    assert.equal(kr.find(A.publicBlob), undefined);
    assert.equal(await kr.lock(buf('pw')), false, 'already locked');
    assert.equal(await kr.lock(buf('other')), false, 'already locked');
    assert.equal(await kr.unlock(buf('wrong')), false);
    assert.equal(kr.locked, true);
    assert.equal(await kr.unlock(buf('pw')), true);
    assert.equal(kr.locked, false);
    assert.deepEqual(comments(kr), ['a', 'b'], 'identities survive a lock');
    assert.ok((await kr.sign(A.publicBlob, buf('d'), 0, CTX)).ok);
    assert.equal(await kr.unlock(buf('pw')), false, 'unlocking an unlocked agent fails');
  });

  test('an unlock sent while the lock passphrase is still being hashed succeeds', async () => {
    const kr = new Keyring({ unlockDelayMs: 1 });
    kr.add(A, buf('a'), NONE);
    const locking = kr.lock(buf('pw'));
    // Not awaited: the right passphrase must not be taken for a wrong guess.
    assert.equal(await kr.unlock(buf('pw')), true);
    assert.equal(await locking, true);
    assert.equal(kr.locked, false);
    assert.deepEqual(comments(kr), ['a']);
  });

  test('the lock takes effect before lock() resolves', async () => {
    const kr = new Keyring({ unlockDelayMs: 1 });
    kr.add(A, buf('a'), NONE);
    const locking = kr.lock(buf('pw'));
    assert.equal(kr.locked, true);
    assert.deepEqual(kr.list(), []);
    await locking;
    assert.equal(await kr.unlock(buf('pw')), true);
  });

  test('binary passphrases', async () => {
    const kr = new Keyring({ unlockDelayMs: 1 });
    for (const pw of [Buffer.of(0), Buffer.from([0, 255, 0]), crypto.randomBytes(1024)]) {
      assert.equal(await kr.lock(pw), true);
      assert.equal(await kr.unlock(cat(Buffer.of(1), pw)), false);
      const other = Buffer.from(pw);
      other[other.length - 1] ^= 0x80;
      assert.equal(await kr.unlock(other), false);
      assert.equal(await kr.unlock(pw.subarray(1)), false);
      assert.equal(await kr.unlock(pw), true);
    }
  });

  test('a passphrase with extra trailing NUL bytes does not unlock', async () => {
    const kr = new Keyring({ unlockDelayMs: 1 });
    assert.equal(await kr.lock(buf('pw')), true);
    assert.equal(await kr.unlock(buf('pw\0')), false);
    assert.equal(await kr.unlock(Buffer.alloc(0)), false);
    assert.equal(await kr.unlock(buf('pw')), true);
  });

  test('wrong passphrases: attempts are serialised and the delay grows', async () => {
    // The unlocker (vault hook) runs inside each attempt: it shows when attempts run.
    const DELAY = 20;
    let active = 0;
    let maxActive = 0;
    const starts: number[] = [];
    const ends: number[] = [];
    const kr = new Keyring({
      unlockDelayMs: DELAY,
      unlocker: async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        starts.push(performance.now());
        await tick();
        active--;
        ends.push(performance.now());
        return null;
      },
    });
    assert.equal(await kr.lock(buf('pw')), true);
    const order: number[] = [];
    const attempts = ['w1', 'w2', 'w3', 'pw'].map((p, i) =>
      kr.unlock(buf(p)).then((ok) => {
        order.push(i);
        return ok;
      }),
    );
    assert.deepEqual(await Promise.all(attempts), [false, false, false, true]);
    assert.deepEqual(order, [0, 1, 2, 3], 'answered in the order asked');
    assert.equal(maxActive, 1, 'never two attempts at once');
    assert.equal(starts.length, 4);
    // After the k-th failure, the next attempt waits at least k × DELAY (timers may
    // fire up to a millisecond early; no upper bounds are asserted).
    for (let k = 1; k <= 3; k++) {
      const gap = starts[k] - ends[k - 1];
      assert.ok(gap >= k * DELAY - 2, `gap after failure ${k}: ${gap.toFixed(1)} ms`);
    }
    // A success resets the count: the next failure waits 1 × DELAY again, which
    // we can only observe as "at least"; check it resolves and the agent stays locked.
    assert.equal(await kr.lock(buf('pw2')), true);
    assert.equal(await kr.unlock(buf('nope')), false);
    assert.equal(kr.locked, true);
    assert.equal(await kr.unlock(buf('pw2')), true);
  });

  test('failed unlocks are counted: each successive failure waits longer', async () => {
    // Count sleeps by observing the delays through the wall clock, as lower bounds only.
    const DELAY = 15;
    const kr = new Keyring({ unlockDelayMs: DELAY });
    await kr.lock(buf('pw'));
    let total = 0;
    for (let k = 1; k <= 4; k++) {
      const t0 = performance.now();
      assert.equal(await kr.unlock(buf(`bad${k}`)), false);
      const took = performance.now() - t0;
      assert.ok(took >= k * DELAY - 2, `failure ${k} took ${took.toFixed(1)} ms`);
      total += took;
    }
    assert.ok(total >= (1 + 2 + 3 + 4) * DELAY - 8);
    assert.equal(await kr.unlock(buf('pw')), true);
  });
});

describe('vault identities', () => {
  const vaultIds = () => [
    { key: A, comment: buf('a'), constraints: NONE },
    { key: B, comment: buf('b'), constraints: NONE },
  ];

  test('a vault key removed by a client stays removed when the vault is re-read, until the next unlock', async () => {
    const kr = new Keyring({
      unlockDelayMs: 1,
      unlocker: async (p) => (p.toString() === 'vault' ? vaultIds() : null),
    });
    kr.lockForVault();
    assert.equal(await kr.unlock(buf('vault')), true);
    assert.deepEqual(comments(kr), ['a', 'b']);
    assert.equal(kr.remove(A.publicBlob), true);
    kr.replaceVaultIdentities(vaultIds()); // the vault file changed on disk
    assert.deepEqual(comments(kr), ['b']);
    assert.equal(await kr.lock(buf('pw')), true);
    assert.deepEqual(kr.entriesView().length, 0, 'vault keys leave memory on lock');
    assert.equal(await kr.unlock(buf('vault')), true);
    assert.deepEqual(comments(kr), ['a', 'b']);
  });
});
