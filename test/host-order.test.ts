// HostKeyOrder (src/agent/host-order.ts): the key a host accepted is offered
// first; for a host not known yet the order rotates by two per refused
// connection; allow-listed keys come next; what was learned persists as bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HostKeyOrder } from '../src/agent/host-order';
import { WireWriter } from '../src/ssh/wire';

const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x5eed;

interface Key {
  name: string;
  blob: Buffer;
}
const keys = (n: number): Key[] =>
  Array.from({ length: n }, (_, i) => ({ name: `k${i + 1}`, blob: Buffer.from(`blob-${i + 1}`) }));
const blobOf = (k: Key) => k.blob;
const names = (ks: Key[]) => ks.map((k) => k.name).join(' ');
const H1 = Buffer.from('host-key-1');
const H2 = Buffer.from('host-key-2');

/**
 * One `ssh` login against a server that accepts only `accepted` and allows
 * `maxTries` offers: ssh offers in the agent's order; on acceptance it signs.
 * Returns how many keys were offered, or null when the server cut it off.
 */
function login(
  order: HostKeyOrder,
  host: Buffer,
  ks: Key[],
  accepted: Key,
  maxTries = 2,
  allows?: (k: Key) => boolean,
): number | null {
  const offered = order.order(host, ks, blobOf, allows);
  for (let i = 0; i < Math.min(maxTries, offered.length); i++)
    if (offered[i] === accepted) {
      order.signed(host, accepted.blob);
      return i + 1;
    }
  order.unsignedEnd(host);
  return null;
}

test('a connection without a bind keeps the agent order', () => {
  const o = new HostKeyOrder();
  const ks = keys(3);
  o.signed(H1, ks[2].blob);
  assert.equal(names(o.order(null, ks, blobOf)), 'k1 k2 k3');
});

test('the learned key comes first, for that host key only', () => {
  const o = new HostKeyOrder();
  const ks = keys(4);
  o.signed(H1, ks[2].blob);
  assert.equal(names(o.order(H1, ks, blobOf)), 'k3 k1 k2 k4');
  assert.ok(o.learned(H1)?.equals(ks[2].blob));
  // A host key change for the same name is another host: nothing carries over.
  assert.equal(names(o.order(H2, ks, blobOf)), 'k1 k2 k3 k4');
  o.signed(H1, ks[3].blob);
  assert.equal(names(o.order(H1, ks, blobOf)), 'k4 k1 k2 k3', 'the newest acceptance wins');
});

test('a learned key that is no longer in the agent is skipped', () => {
  const o = new HostKeyOrder();
  o.signed(H1, Buffer.from('gone'));
  assert.equal(names(o.order(H1, keys(3), blobOf)), 'k1 k2 k3');
});

test('seven keys, MaxAuthTries 2, only the seventh accepted: in four logins, then always first', () => {
  const o = new HostKeyOrder();
  const ks = keys(7);
  const results = [1, 2, 3, 4, 5, 6].map(() => login(o, H1, ks, ks[6]));
  assert.deepEqual(results, [null, null, null, 1, 1, 1]);
  assert.equal(names(o.order(H1, ks, blobOf)).split(' ')[0], 'k7');
});

test('fast-check: with K keys and two tries a login succeeds within ⌈K/2⌉ attempts', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.nat(), (k, pick) => {
      const o = new HostKeyOrder();
      const ks = keys(k);
      const accepted = ks[pick % k];
      let attempts = 0;
      for (;;) {
        attempts++;
        if (login(o, H1, ks, accepted) !== null) break;
        assert.ok(attempts < Math.ceil(k / 2), `no success within ${attempts} attempts`);
      }
      assert.equal(login(o, H1, ks, accepted, 1), 1, 'from then on at the first offer');
    }),
    { numRuns: 300, seed: SEED },
  );
});

test('a learned key the server stops accepting is dropped and the rotation starts', () => {
  const o = new HostKeyOrder();
  const ks = keys(5);
  o.signed(H1, ks[0].blob);
  assert.equal(login(o, H1, ks, ks[4], 1), null);
  assert.equal(o.learned(H1), undefined);
  assert.equal(names(o.order(H1, ks, blobOf)), 'k3 k4 k5 k1 k2');
});

test('keys whose --allow rules name the host come next, after the learned key', () => {
  const o = new HostKeyOrder();
  const ks = keys(5);
  const allows = (k: Key) => k.name === 'k2' || k.name === 'k5';
  assert.equal(names(o.order(H1, ks, blobOf, allows)), 'k2 k5 k1 k3 k4');
  o.signed(H1, ks[3].blob);
  assert.equal(names(o.order(H1, ks, blobOf, allows)), 'k4 k2 k5 k1 k3');
  // A server that takes an allow-listed key: found at the first login.
  const p = new HostKeyOrder();
  assert.equal(login(p, H2, ks, ks[4], 2, allows), 2);
});

test('forget and forgetAll drop what was learned, and report a change', () => {
  let changes = 0;
  const o = new HostKeyOrder({ onChange: () => changes++ });
  const ks = keys(3);
  o.signed(H1, ks[1].blob);
  o.unsignedEnd(H2);
  assert.equal(changes, 2);
  assert.equal(o.forget(H1), true);
  assert.equal(o.forget(H1), false);
  assert.equal(names(o.order(H1, ks, blobOf)), 'k1 k2 k3');
  assert.equal(names(o.order(H2, ks, blobOf)), 'k3 k1 k2');
  o.forgetAll();
  assert.equal(names(o.order(H2, ks, blobOf)), 'k1 k2 k3');
  assert.equal(changes, 4);
  assert.deepEqual(o.entries(), []);
});

test('the number of hosts kept is bounded: the least recently seen goes', () => {
  let t = 0;
  const o = new HostKeyOrder({ maxHosts: 2, now: () => ++t });
  const ks = keys(2);
  o.signed(H1, ks[1].blob);
  o.signed(H2, ks[1].blob);
  o.unsignedEnd(H1); // H1 seen again: H2 is now the oldest
  o.signed(Buffer.from('host-key-3'), ks[1].blob);
  assert.deepEqual(
    o.entries().map((e) => e.hostKey.toString()),
    ['host-key-3', 'host-key-1'],
  );
});

test('persistence: toBytes → fromBytes keeps every host, its key, failures and order', () => {
  let t = 1000;
  const o = new HostKeyOrder({ now: () => (t += 10) });
  const ks = keys(6);
  o.signed(H1, ks[4].blob);
  o.unsignedEnd(H2);
  o.unsignedEnd(H2);
  const back = HostKeyOrder.fromBytes(o.toBytes());
  assert.ok(back);
  assert.deepEqual(back.entries(), o.entries());
  assert.equal(names(back.order(H1, ks, blobOf)), names(o.order(H1, ks, blobOf)));
  assert.equal(names(back.order(H2, ks, blobOf)), 'k5 k6 k1 k2 k3 k4');
  assert.ok(back.toBytes().equals(o.toBytes()));
  assert.deepEqual(HostKeyOrder.fromBytes(new HostKeyOrder().toBytes())?.entries(), []);
});

function persisted(
  hosts: { host: Buffer; learned?: Buffer; failures?: number; seen?: bigint; flags?: number }[],
  version = 1,
): Buffer {
  const w = new WireWriter().byte(version).uint32(hosts.length);
  for (const h of hosts)
    w.string(h.host)
      .string(h.learned ?? Buffer.alloc(0))
      .uint32(h.failures ?? 0)
      .uint64(h.seen ?? 0n)
      .byte(h.flags ?? 0);
  return w.toBuffer();
}

test('malformed persisted bytes are rejected, never thrown', () => {
  const good = persisted([{ host: H1, learned: Buffer.from('k') }, { host: H2 }]);
  assert.ok(HostKeyOrder.fromBytes(good));
  const bad: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['another version', persisted([{ host: H1 }], 2)],
    ['trailing bytes', Buffer.concat([good, Buffer.of(0)])],
    ['a duplicate host', persisted([{ host: H1 }, { host: H1 }])],
    ['an empty host key', persisted([{ host: Buffer.alloc(0) }])],
    ['an oversized host key', persisted([{ host: Buffer.alloc(4096 + 1) }])],
    ['unknown flags', persisted([{ host: H1, flags: 2 }])],
    [
      'more forwarded-only hosts than the cap',
      persisted(
        Array.from({ length: 65 }, (_, i) => ({ host: Buffer.from(`fwd-${i}`), flags: 1 })),
      ),
    ],
    ['an oversized learned key', persisted([{ host: H1, learned: Buffer.alloc(16 * 1024 + 1) }])],
    ['too many failures', persisted([{ host: H1, failures: 0x10000 }])],
    ['a time past 2^53', persisted([{ host: H1, seen: 1n << 60n }])],
    ['a count past the bound', Buffer.concat([Buffer.of(1), Buffer.from([0, 0, 0x10, 0])])],
    ['a huge count', Buffer.concat([Buffer.of(1), Buffer.from([0xff, 0xff, 0xff, 0xff])])],
  ];
  for (const [what, b] of bad) assert.equal(HostKeyOrder.fromBytes(b), null, what);
  for (let n = 0; n < good.length; n++)
    assert.equal(HostKeyOrder.fromBytes(good.subarray(0, n)), null, `truncated at ${n}`);
  assert.equal(
    HostKeyOrder.fromBytes(persisted([{ host: H1 }, { host: H2 }]), { maxHosts: 1 }),
    null,
  );
});

test('fast-check: fromBytes never throws on arbitrary or mutated bytes', () => {
  const o = new HostKeyOrder();
  o.signed(H1, Buffer.from('key'));
  o.unsignedEnd(H2);
  const seed = o.toBytes();
  const mutated = fc
    .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 })
    .map((edits) => {
      const b = Buffer.from(seed);
      for (const [at, v] of edits) b[at % b.length] = v;
      return b;
    });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }).map(Buffer.from), mutated), (b) => {
      const back = HostKeyOrder.fromBytes(b);
      if (back) assert.ok(back.toBytes().equals(b), 'whatever is accepted round-trips exactly');
    }),
    { numRuns: 2000, seed: SEED },
  );
});

test('restore: the persisted form replaces what is known, quietly; null or garbage forgets', () => {
  const ks = keys(6);
  const saved = new HostKeyOrder();
  saved.signed(H1, ks[4].blob);
  let changes = 0;
  const o = new HostKeyOrder({ onChange: () => changes++ });
  o.unsignedEnd(H2);
  changes = 0;
  assert.equal(o.restore(saved.toBytes()), true);
  assert.equal(changes, 0, 'reading the store is not a change to write back');
  assert.deepEqual(o.entries(), saved.entries());
  assert.equal(names(o.order(H1, ks, blobOf)), 'k5 k1 k2 k3 k4 k6');
  assert.equal(names(o.order(H2, ks, blobOf)), 'k1 k2 k3 k4 k5 k6', 'H2 was memory only');
  assert.equal(o.restore(null), true);
  assert.deepEqual(o.entries(), []);
  o.signed(H1, ks[0].blob);
  assert.equal(o.restore(Buffer.from('not an order')), false);
  assert.deepEqual(o.entries(), []);
  assert.equal(changes, 1);
});

test('a login with the key the host already accepts is not a significant change', () => {
  const ks = keys(3);
  const seen: boolean[] = [];
  const o = new HostKeyOrder({ onChange: (significant) => seen.push(significant) });
  o.signed(H1, ks[0].blob); // a new host
  o.signed(H1, ks[0].blob); // the same again: only last seen moves
  o.signed(H1, ks[1].blob); // another key
  o.unsignedEnd(H1);
  o.signed(H1, ks[1].blob); // after a refusal
  assert.deepEqual(seen, [true, false, true, true, true]);
});

test('hosts seen only through forwarded connections are capped apart, and push out only each other', () => {
  let t = 0;
  const o = new HostKeyOrder({ now: () => ++t, maxForwardedHosts: 3 });
  const ks = keys(2);
  o.signed(H1, ks[0].blob); // a local login
  for (let i = 0; i < 10; i++) o.signed(Buffer.from(`made-up-${i}`), ks[1].blob, true);
  const hosts = o.entries().map((r) => r.hostKey.toString());
  assert.deepEqual(hosts, ['made-up-9', 'made-up-8', 'made-up-7', 'host-key-1']);
  assert.equal(o.learned(H1)?.equals(ks[0].blob), true, 'what a local login taught stays');
  // A host seen locally is local from then on: no longer counted against the cap.
  o.unsignedEnd(Buffer.from('made-up-7'));
  for (let i = 10; i < 13; i++) o.signed(Buffer.from(`made-up-${i}`), ks[1].blob, true);
  assert.ok(o.entries().some((r) => r.hostKey.toString() === 'made-up-7' && !r.forwarded));
  const back = HostKeyOrder.fromBytes(o.toBytes(), { maxForwardedHosts: 3 });
  assert.deepEqual(back?.entries(), o.entries());
  // Host keys too large to be host keys are not learned at all.
  o.signed(Buffer.alloc(4097, 1), ks[0].blob);
  assert.equal(o.learned(Buffer.alloc(4097, 1)), undefined);
});
