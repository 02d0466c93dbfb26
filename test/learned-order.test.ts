// LearnedOrder (daemon/learned-order.ts): what a connection's binds and its
// requests teach the host order. A login connection (last bind not a
// forwarding one) teaches; a forwarded agent's requests teach as forwarded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SessionBind } from '../src/agent/destination';
import { HostKeyOrder } from '../src/agent/host-order';
import type { ConnectionContext } from '../src/agent/server';
import { LearnedOrder } from '../src/daemon/learned-order';

const HOP = Buffer.from('goober-host-key');
const FAR = Buffer.from('boomer-host-key');
const ids = ['k1', 'k2', 'k3', 'k4'].map((n) => ({
  keyBlob: Buffer.from(n),
  comment: Buffer.from(n),
}));
const names = (l: { comment: Buffer }[]) => l.map((i) => i.comment.toString()).join(' ');

let nextId = 1;
function connection(...binds: [Buffer, boolean][]): ConnectionContext {
  const b: SessionBind[] = binds.map(([hostKey, forwarded]) => ({
    hostKey,
    sessionId: Buffer.from('sid'),
    forwarded,
  }));
  return { id: nextId++, binds: b, bindAttempted: b.length > 0, bindAttempts: b.length };
}

test('a login that lists and closes unsigned moves the order; one that signs teaches the key', () => {
  const o = new LearnedOrder(new HostKeyOrder());
  const a = connection([HOP, false]);
  assert.equal(names(o.list(a, ids)), 'k1 k2 k3 k4');
  o.closed(a);
  const b = connection([HOP, false]);
  assert.equal(names(o.list(b, ids)), 'k3 k4 k1 k2', 'moved on by two');
  o.signed(b, Buffer.from('k4'));
  o.closed(b);
  assert.equal(names(o.list(connection([HOP, false]), ids)), 'k4 k1 k2 k3');
  assert.equal(o.order.entries()[0].forwarded, undefined, 'a local login');
});

test('no bind, or a forwarding bind last: the agent order, nothing learned', () => {
  const o = new LearnedOrder(new HostKeyOrder());
  for (const c of [connection(), connection([HOP, true])]) {
    assert.equal(names(o.list(c, ids)), 'k1 k2 k3 k4');
    o.signed(c, Buffer.from('k2'));
    o.closed(c);
  }
  assert.deepEqual(o.order.entries(), []);
});

test('through a forwarded agent (goober → boomer): learned, marked as seen only forwarded', () => {
  const o = new LearnedOrder(new HostKeyOrder());
  const c = connection([HOP, true], [FAR, false]);
  o.list(c, ids);
  o.signed(c, Buffer.from('k3'));
  o.closed(c);
  const [rec] = o.order.entries();
  assert.ok(rec.hostKey.equals(FAR));
  assert.equal(rec.forwarded, true);
  assert.equal(names(o.list(connection([HOP, true], [FAR, false]), ids)), 'k3 k1 k2 k4');
});
