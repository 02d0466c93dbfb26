// VaultHostOrder (daemon/vault-host-order.ts): when the learned host order is
// written into the vault and read back, against a stand-in for the bridge.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostKeyOrder } from '../src/agent/host-order';
import { HOST_ORDER_SECTION, VaultHostOrder } from '../src/daemon/vault-host-order';
import type { VaultBridge } from '../src/daemon/vault-bridge';

const H1 = Buffer.from('host-1');
const K1 = Buffer.from('key-1');

/** The part of VaultBridge that VaultHostOrder uses: an open vault's sections. */
function fakeVault() {
  const sections = new Map<string, Buffer>();
  const writes: Buffer[] = [];
  const v = {
    loaded: true,
    section: (name: string) => sections.get(name),
    saveSection: (name: string, data: Buffer | null) => {
      if (data === null) sections.delete(name);
      else sections.set(name, Buffer.from(data));
      writes.push(data === null ? Buffer.alloc(0) : Buffer.from(data));
    },
  };
  return { v, bridge: v as unknown as VaultBridge, sections, writes };
}

function wired(bridge: VaultBridge | undefined, logs: string[] = []) {
  let store: VaultHostOrder;
  const order = new HostKeyOrder({ onChange: (s) => store.changed(s) });
  store = new VaultHostOrder(order, bridge, (m) => logs.push(m));
  return { order, store };
}

test('a change is written a moment later, in one write for a burst', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { bridge, writes } = fakeVault();
  const { order } = wired(bridge);
  order.signed(H1, K1);
  order.unsignedEnd(Buffer.from('host-2'));
  assert.equal(writes.length, 0, 'not before the reply');
  t.mock.timers.tick(1000);
  assert.equal(writes.length, 1);
  assert.deepEqual(HostKeyOrder.fromBytes(writes[0])?.entries(), order.entries());
});

test('a last-seen time alone waits for the lock; locking writes, then forgets', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { bridge, writes, sections } = fakeVault();
  const { order, store } = wired(bridge);
  order.signed(H1, K1);
  t.mock.timers.tick(1000);
  order.signed(H1, K1);
  t.mock.timers.tick(5000);
  assert.equal(writes.length, 1);
  store.locking();
  assert.equal(writes.length, 2, 'the last-seen time is written at the lock');
  assert.deepEqual(order.entries(), [], 'not in memory while locked');
  store.unlocked();
  assert.deepEqual(order.learned(H1), K1, 'read back at unlock');
  assert.ok(sections.get(HOST_ORDER_SECTION));
  store.flush();
  assert.equal(writes.length, 2, 'reading back is not a change');
});

test('a vault without the section keeps (and writes) what was learned before', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { v, bridge, writes } = fakeVault();
  v.loaded = false;
  const { order, store } = wired(bridge);
  order.signed(H1, K1);
  t.mock.timers.tick(2000);
  assert.equal(writes.length, 0, 'no open vault, nothing written');
  v.loaded = true;
  store.unlocked();
  assert.deepEqual(order.learned(H1), K1);
  t.mock.timers.tick(1000);
  assert.equal(writes.length, 1);
});

test('a section that does not read back: logged, nothing known', () => {
  const { bridge, sections } = fakeVault();
  const logs: string[] = [];
  const { order, store } = wired(bridge, logs);
  order.signed(H1, K1);
  sections.set(HOST_ORDER_SECTION, Buffer.from('garbage'));
  store.unlocked();
  assert.deepEqual(order.entries(), []);
  assert.match(logs.join('\n'), /does not read back/);
});

test('without a vault, the order lives in memory: nothing to write, kept on lock', () => {
  const { order, store } = wired(undefined);
  order.signed(H1, K1);
  store.flush();
  store.locking();
  assert.deepEqual(order.learned(H1), K1);
});

test('forgetting every host removes the section, so older tsagents read the vault again', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { bridge, sections } = fakeVault();
  const { order } = wired(bridge);
  order.signed(H1, K1);
  t.mock.timers.tick(1000);
  assert.ok(sections.has(HOST_ORDER_SECTION));
  order.forgetAll();
  t.mock.timers.tick(1000);
  assert.equal(sections.has(HOST_ORDER_SECTION), false);
});
