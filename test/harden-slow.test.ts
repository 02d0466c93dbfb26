// Slow and greedy clients: a slow-loris is closed at the message deadline, a
// client that never reads its replies cannot grow the agent's memory, the
// connection limit closes the one too many at once, hundreds of silent
// connections are closed at the first-message deadline, and the idle timeout
// closes a silent connection. Meanwhile others are served. Bounded waits only.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../src/agent/client';
import { Tsagent, identitiesRequest, rssKiB, startTsagent } from './fuzz/agent';
import { makeKey } from './fuzz/corpus';
import { sleep, waitFor } from './fixtures/run';

const IDENTITIES_ANSWER = 12;

/** A connection we watch for the agent hanging up. */
function openConnection(
  sock: string,
): Promise<{ s: net.Socket; closed: Promise<void>; isClosed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let closed = false;
    const closedP = new Promise<void>((r) => s.on('close', () => ((closed = true), r())));
    s.on('error', () => {});
    s.once('connect', () => resolve({ s, closed: closedP, isClosed: () => closed }));
    s.once('error', reject);
  });
}

async function served(sock: string): Promise<boolean> {
  const { reply } = await identitiesRequest(sock);
  return Buffer.isBuffer(reply) && reply[0] === IDENTITIES_ANSWER;
}

describe('slow and greedy clients', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  let agent: Tsagent;
  before(async () => {
    agent = await startTsagent({ debug: true });
  });
  after(async () => {
    await agent?.stop();
  });

  it(
    'a slow-loris is closed after the message deadline; others are served meanwhile',
    { timeout: 60_000 },
    async () => {
      const loris = await openConnection(agent.sock);
      // Announce a 100-byte REQUEST_IDENTITIES… and dribble it a byte at a time.
      loris.s.write(Buffer.of(0, 0, 0, 100, 11));
      let dribbled = 0;
      let servedMeanwhile = 0;
      const deadline = Date.now() + 40_000; // the agent's deadline is 10 s
      while (!loris.isClosed() && Date.now() < deadline) {
        await sleep(400);
        if (!loris.isClosed() && dribbled < 98) {
          loris.s.write(Buffer.of(0));
          dribbled++;
        }
        if (await served(agent.sock)) servedMeanwhile++;
      }
      assert.ok(loris.isClosed(), 'the slow-loris connection is still open');
      assert.ok(dribbled < 98, 'the whole message got through');
      assert.ok(servedMeanwhile > 0, 'nobody was served meanwhile');
      await waitFor(
        'the deadline in the log',
        () => /message not completed in time/.test(agent.output().stderr),
        5000,
      );
      assert.ok(await served(agent.sock));
    },
  );

  it(
    'a client that never reads its replies: others are served, memory stays bounded',
    { timeout: 90_000 },
    async (t) => {
      // Make REQUEST_IDENTITIES answers big: 48 keys with 4 000-byte comments (~200 KiB a
      // reply; comments over 4 KiB are refused).
      const c = await AgentClient.connect(agent.sock);
      const keys = Array.from({ length: 48 }, (_, i) => makeKey('ed25519', false, `greedy-${i}`));
      for (const k of keys) {
        const r = await c.request({
          type: 'add',
          keyType: k.keyType,
          fields: k.fields,
          comment: `${k.name}:${'x'.repeat(4000)}`,
          constraints: { extensions: [] },
        });
        assert.equal(r.type, 'success');
      }
      const before = rssKiB(agent.pid);
      // 20 000 requests asking for ~4 GB of replies, written as fast as the socket takes them.
      const greedy = await openConnection(agent.sock);
      greedy.s.pause(); // never read
      const batch = Buffer.concat(Array.from({ length: 1000 }, () => Buffer.of(0, 0, 0, 1, 11)));
      for (let i = 0; i < 20; i++) greedy.s.write(batch);
      let peak = before;
      for (let i = 0; i < 20; i++) {
        await sleep(200);
        peak = Math.max(peak, rssKiB(agent.pid));
        assert.ok(await served(agent.sock), 'another client was not served');
      }
      t.diagnostic(`RSS before ${before} KiB, peak ${peak} KiB`);
      // Without backpressure the agent would hold thousands of 200 KiB replies.
      assert.ok(peak < before + 150 * 1024, `RSS grew from ${before} KiB to ${peak} KiB`);
      greedy.s.destroy();
      for (const k of keys) await c.request({ type: 'remove', keyBlob: k.blob });
      c.close();
      assert.ok(await served(agent.sock));
    },
  );

  it(
    '--max-connections 4: the 5th connection is closed at once, the others work',
    { timeout: 60_000 },
    async () => {
      const a = await startTsagent({ debug: true, args: ['--max-connections', '4'] });
      const clients: AgentClient[] = [];
      try {
        for (let i = 0; i < 4; i++) {
          const c = await AgentClient.connect(a.sock);
          clients.push(c);
          assert.equal((await c.request({ type: 'request-identities' })).type, 'identities');
        }
        const fifth = await identitiesRequest(a.sock);
        assert.equal(fifth.reply, 'closed');
        await waitFor(
          'the refusal in the log',
          () => /refusing connection: 4 connections open/.test(a.output().stderr),
          5000,
        );
        for (const c of clients)
          assert.equal((await c.request({ type: 'request-identities' })).type, 'identities');
        // A freed slot is taken again.
        clients.pop()!.close();
        await waitFor('a free slot', async () => served(a.sock), 10_000, 100);
      } finally {
        for (const c of clients) c.close();
        await a.stop();
      }
    },
  );

  it(
    '600 silent connections: they are closed within seconds and the owner is served within 15 s',
    { timeout: 90_000 },
    async () => {
      const a = await startTsagent({ debug: true });
      const silent: net.Socket[] = [];
      try {
        // Hold every connection the agent takes (and more), saying nothing.
        for (let i = 0; i < 600; i++) silent.push((await openConnection(a.sock)).s);
        const t0 = Date.now();
        let servedAfter = -1;
        while (Date.now() - t0 < 15_000) {
          if (await served(a.sock)) {
            servedAfter = Date.now() - t0;
            break;
          }
          await sleep(250);
        }
        assert.ok(servedAfter >= 0, 'the owner was not served within 15 s');
        assert.ok(/no complete message in \d+ ms/.test(a.output().stderr));
      } finally {
        for (const s of silent) s.destroy();
        await a.stop();
      }
    },
  );

  it(
    '--idle-timeout 2 closes a silent connection; the agent keeps serving',
    { timeout: 60_000 },
    async () => {
      const a = await startTsagent({ debug: true, args: ['--idle-timeout', '2'] });
      try {
        const silent = await openConnection(a.sock);
        await Promise.race([silent.closed, sleep(20_000)]);
        assert.ok(silent.isClosed(), 'the silent connection is still open');
        await waitFor(
          'the idle close in the log',
          () => /idle, closing/.test(a.output().stderr),
          5000,
        );
        assert.ok(await served(a.sock));
      } finally {
        await a.stop();
      }
    },
  );
});
