// Acceptance: what a running agent does with hostile or broken clients. It may
// answer FAILURE or close the connection, but it must never crash, and it must
// keep serving everyone else.

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeResponse, encodeRequest } from '../src/agent/protocol';
import {
  AGENTS,
  RunningAgent,
  agentAnswers,
  frame,
  rawRequest,
  sshString,
  startAgent,
} from './fixtures/agent';
import { Askpass, KEY_TYPES, TestKey, makeKey, publicBlob } from './fixtures/keys';
import {
  SSH_ADD,
  SSH_KEYGEN,
  alive,
  baseEnv,
  mkTemp,
  rmTemp,
  run,
  skipUnless,
} from './fixtures/run';

const skip = skipUnless([SSH_ADD, SSH_KEYGEN]);
const FAILURE = Buffer.of(5);

let dir: string;
let ed: TestKey;
let rsa: TestKey;
before(async () => {
  if (skip) return;
  dir = mkTemp();
  [ed, rsa] = await Promise.all([makeKey(dir, KEY_TYPES[0]), makeKey(dir, KEY_TYPES[4])]);
});
after(() => rmTemp(dir));

type Expect = 'failure' | 'closed' | 'failure-or-closed' | 'no-reply' | 'identities' | Buffer;

/**
 * Malformed or unsupported messages and what each agent answers. Where the two
 * agents differ, both answers are safe; the comment says why they differ.
 */
const CASES: { name: string; body: Buffer; tsagent: Expect; openssh: Expect }[] = [
  { name: 'unknown type 200', body: Buffer.of(200), tsagent: 'failure', openssh: 'failure' },
  { name: 'type 0', body: Buffer.of(0), tsagent: 'failure', openssh: 'failure' },
  {
    name: 'type 255 with data',
    body: Buffer.of(255, 1, 2, 3),
    tsagent: 'failure',
    openssh: 'failure',
  },
  {
    name: 'a reply type (FAILURE) sent as a request',
    body: Buffer.of(5),
    tsagent: 'failure',
    openssh: 'failure',
  },
  {
    name: 'PKCS#11 add (type 20)',
    body: Buffer.concat([Buffer.of(20), sshString('/nonexistent/pkcs11.so'), sshString('1234')]),
    tsagent: 'failure',
    openssh: 'failure',
  },
  { name: 'PKCS#11 add, no body', body: Buffer.of(20), tsagent: 'failure', openssh: 'failure' },
  {
    name: 'PKCS#11 remove (type 21)',
    body: Buffer.concat([Buffer.of(21), sshString('/nonexistent/pkcs11.so'), sshString('')]),
    tsagent: 'failure',
    openssh: 'failure',
  },
  {
    name: 'PKCS#11 add constrained (type 26)',
    body: Buffer.concat([
      Buffer.of(26),
      sshString('/nonexistent/pkcs11.so'),
      sshString(''),
      Buffer.of(1, 0, 0, 0, 5),
    ]),
    tsagent: 'failure',
    openssh: 'failure',
  },
  {
    name: 'SIGN_REQUEST with a string longer than the message',
    body: Buffer.concat([Buffer.of(13), Buffer.of(0, 0, 1, 0), Buffer.from('abc')]),
    tsagent: 'failure',
    openssh: 'failure',
  },
  {
    name: 'SIGN_REQUEST without flags',
    body: Buffer.concat([Buffer.of(13), sshString('x'), sshString('y')]),
    tsagent: 'failure',
    openssh: 'failure',
  },
  {
    name: 'ADD_IDENTITY of an unknown key type',
    body: Buffer.concat([Buffer.of(17), sshString('ssh-foo'), sshString('zz'), sshString('c')]),
    tsagent: 'failure',
    openssh: 'failure',
  },
  {
    name: 'ADD_IDENTITY with a truncated ed25519 key',
    body: Buffer.concat([Buffer.of(17), sshString('ssh-ed25519'), sshString(Buffer.alloc(32))]),
    tsagent: 'failure',
    openssh: 'failure',
  },
  {
    name: 'REMOVE_IDENTITY truncated',
    body: Buffer.of(18, 0, 0, 0, 9, 1),
    tsagent: 'failure',
    openssh: 'failure',
  },
  { name: 'EXTENSION without a name', body: Buffer.of(27), tsagent: 'failure', openssh: 'failure' },
  {
    name: 'EXTENSION unknown',
    body: Buffer.concat([Buffer.of(27), sshString('nope@example.com')]),
    tsagent: 'failure',
    openssh: 'failure',
  },
  // OpenSSH ignores bytes after a complete request; tsagent refuses the message.
  {
    name: 'REQUEST_IDENTITIES with trailing bytes',
    body: Buffer.of(11, 1, 2, 3),
    tsagent: 'failure',
    openssh: 'identities',
  },
  {
    name: 'REMOVE_ALL_IDENTITIES with trailing bytes',
    body: Buffer.of(19, 1),
    tsagent: 'failure',
    openssh: Buffer.of(6), // and the key is gone: the test adds it back
  },
  // A zero-length message: OpenSSH waits for a type byte that never comes
  // (its "incomplete header" check), tsagent answers FAILURE at once.
  { name: 'empty message', body: Buffer.alloc(0), tsagent: 'failure', openssh: 'no-reply' },
];

async function expectReply(sock: string, bytes: Buffer, expect: Expect, what: string) {
  if (expect === 'no-reply') {
    await assert.rejects(rawRequest(sock, bytes, { timeout: 500 }), /no reply/, what);
    return;
  }
  const reply = await rawRequest(sock, bytes);
  if (expect === 'failure') assert.deepEqual(reply, FAILURE, what);
  else if (expect === 'closed') assert.equal(reply, 'closed', what);
  else if (expect === 'identities')
    assert.ok(reply !== 'closed' && reply[0] === 12, `${what}: ${String(reply)}`);
  else if (expect === 'failure-or-closed')
    assert.ok(reply === 'closed' || FAILURE.equals(reply), `${what}: ${String(reply)}`);
  else assert.deepEqual(reply, expect, what);
}

for (const agent of AGENTS) {
  describe(`robustness of ${agent.name}`, { skip }, () => {
    let a: RunningAgent;
    const sshAdd = (args: string[]) =>
      run(SSH_ADD, args, { env: baseEnv({ SSH_AUTH_SOCK: a.sock }), cwd: dir });
    /** The agent is alive and serves a new connection, with its keys. */
    async function stillServing(keys = 1) {
      assert.ok(alive(a.pid), 'agent process alive');
      const r = await sshAdd(['-l']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(r.stdout.trim().split('\n').length, keys, r.stdout);
    }

    before(async () => {
      a = await startAgent(agent);
      const r = await sshAdd([ed.priv]);
      assert.equal(r.code, 0, r.stderr);
    });
    after(() => a?.stop());

    for (const c of CASES) {
      it(`${c.name} → ${agent.kind === 'tsagent' ? String(c.tsagent) : String(c.openssh)}`, async () => {
        const expect = agent.kind === 'tsagent' ? c.tsagent : c.openssh;
        await expectReply(a.sock, frame(c.body), expect, c.name);
        if (c.body[0] === 19 && agent.kind === 'openssh')
          assert.equal((await sshAdd([ed.priv])).code, 0);
        await stillServing();
      });
    }

    it('a 300 KiB message: connection closed, the agent serves a new one', async () => {
      const body = Buffer.concat([Buffer.of(17), crypto.randomBytes(300 * 1024)]);
      assert.equal(await rawRequest(a.sock, frame(body)), 'closed');
      // The length header (and type byte: OpenSSH waits for 5 bytes) is enough.
      const header = Buffer.alloc(5);
      header.writeUInt32BE(300 * 1024);
      header[4] = 17;
      assert.equal(await rawRequest(a.sock, header), 'closed');
      await stillServing();
    });

    it('a truncated message, then the client closes', async () => {
      for (const bytes of [
        Buffer.of(0, 0),
        Buffer.of(0, 0, 0, 100, 13, 0, 0),
        frame(encodeRequest({ type: 'request-identities' })).subarray(0, 6),
      ]) {
        await new Promise<void>((resolve, reject) => {
          const s = net.connect(a.sock, () => s.end(bytes));
          s.on('error', reject);
          s.on('close', () => resolve());
          s.resume();
        });
      }
      await stillServing();
    });

    it('requests split across many writes, and several requests in one write', async () => {
      const s = net.connect(a.sock);
      await new Promise((r) => s.once('connect', r));
      const one = encodeRequest({ type: 'request-identities' });
      const replies: Buffer[] = [];
      let buf = Buffer.alloc(0);
      const done = new Promise<void>((resolve) => {
        s.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
            replies.push(buf.subarray(4, 4 + buf.readUInt32BE(0)));
            buf = buf.subarray(4 + buf.readUInt32BE(0));
          }
          if (replies.length === 4) resolve();
        });
      });
      for (const b of one) {
        s.write(Buffer.of(b));
        await new Promise((r) => setImmediate(r));
      }
      s.write(Buffer.concat([one, one, one]));
      await done;
      s.destroy();
      for (const r of replies) {
        const res = decodeResponse(r);
        assert.equal(res.type, 'identities');
        assert.equal(res.type === 'identities' && res.identities.length, 1);
      }
    });

    it('random garbage (seeded) never crashes it', async () => {
      // Deterministic "random" bodies; types 22/23 (LOCK/UNLOCK) are left out:
      // a malformed one makes OpenSSH's agent exit (see the test below).
      let seed = 12345;
      const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
      for (let i = 0; i < 60; i++) {
        const len = rnd() % 200;
        const body = Buffer.alloc(len + 1);
        for (let j = 0; j <= len; j++) body[j] = rnd() & 0xff;
        while (body[0] === 22 || body[0] === 23) body[0] = rnd() & 0xff;
        // A body starting with 11 or 19 may be answered normally by OpenSSH
        // (it ignores trailing bytes); anything else is FAILURE or a close.
        const reply = await rawRequest(a.sock, frame(body));
        if (reply !== 'closed' && !FAILURE.equals(reply)) {
          assert.ok([11, 19, 27].includes(body[0]), `type ${body[0]}: ${reply.toString('hex')}`);
        }
      }
      await stillServing();
    });

    it('50 concurrent ssh-add -l and 50 concurrent raw sign requests are all answered', async () => {
      const lists = Array.from({ length: 50 }, () => sshAdd(['-l']));
      const data = Buffer.from('concurrent');
      const signs = Array.from({ length: 50 }, () =>
        rawRequest(
          a.sock,
          encodeRequest({ type: 'sign', keyBlob: publicBlob(ed), data, flags: 0 }),
          { timeout: 30_000 },
        ),
      );
      for (const r of await Promise.all(lists)) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `${ed.listLine}\n`);
      }
      for (const r of await Promise.all(signs)) {
        assert.notEqual(r, 'closed');
        assert.equal(decodeResponse(r as Buffer).type, 'signature');
      }
    });

    it('many open idle connections do not stop it serving', async () => {
      const idle = await Promise.all(
        Array.from(
          { length: 50 },
          () =>
            new Promise<net.Socket>((resolve, reject) => {
              const s = net.connect(a.sock, () => resolve(s));
              s.on('error', reject);
            }),
        ),
      );
      try {
        await stillServing();
      } finally {
        for (const s of idle) s.destroy();
      }
    });
  });

  describe(`malformed LOCK against ${agent.name}`, { skip }, () => {
    let a: RunningAgent;
    let adir: string;
    before(async () => {
      adir = mkTemp();
      a = await startAgent(agent);
    });
    after(async () => {
      await a?.stop();
      rmTemp(adir);
    });

    it(
      agent.kind === 'openssh'
        ? 'OpenSSH: the agent exits (fatal) rather than stay unlocked'
        : 'tsagent (deliberately different): locks for the owner, drops the client, keeps serving',
      async () => {
        const env = baseEnv({ SSH_AUTH_SOCK: a.sock });
        assert.equal((await run(SSH_ADD, [rsa.priv], { env })).code, 0);
        // LOCK whose passphrase string claims more bytes than the message has.
        const malformed = frame(Buffer.of(22, 0, 0, 0, 50, 1, 2));
        const reply = await rawRequest(a.sock, malformed);
        assert.equal(reply, 'closed');
        if (agent.kind === 'openssh') {
          await a.exited;
          assert.equal(await agentAnswers(a.sock), false);
          return;
        }
        // tsagent: still alive; the key that lived only in memory is gone (as on
        // SIGUSR1), and no secret is written that would bring it back.
        assert.ok(alive(a.pid));
        const l = await run(SSH_ADD, ['-l'], { env });
        assert.deepEqual([l.code, l.stdout], [1, 'The agent has no identities.\n']);
        const sign = await rawRequest(
          a.sock,
          encodeRequest({ type: 'sign', keyBlob: publicBlob(rsa), data: Buffer.of(1), flags: 4 }),
        );
        assert.deepEqual(sign, FAILURE);
        assert.deepEqual(
          fs.readdirSync(path.dirname(a.sock)).filter((f) => /recovery/.test(f)),
          [],
          'a recovery file was written',
        );
        // No vault, so nothing to unlock with: the agent stays open and the owner adds again.
        const ask = new Askpass(adir);
        ask.answer('anything');
        const u = await run(SSH_ADD, ['-X'], {
          env: baseEnv({ SSH_AUTH_SOCK: a.sock, ...ask.env() }),
        });
        assert.equal(u.code, 1, 'unlock of an agent that is not locked');
        assert.equal((await run(SSH_ADD, [rsa.priv], { env })).code, 0);
        const l2 = await run(SSH_ADD, ['-l'], { env });
        assert.deepEqual([l2.code, l2.stdout], [0, `${rsa.listLine}\n`]);
      },
    );
  });
}
