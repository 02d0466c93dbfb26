// The server in-process (as Go's agent TestServer): an AgentServer on a temp
// socket serving an in-memory Keyring. Every message type gets its answer,
// malformed input gets FAILURE (a malformed LOCK a close and a lock), errors
// of the served agent become FAILURE, and the connection survives all of it.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { TestKey, generateTestKey } from '../bench/test-keys';
import { AgentClient } from '../src/agent/client';
import { Keyring } from '../src/agent/keyring';
import { verifySignature } from '../src/ssh/signature';
import { MSG, OutgoingRequest, Response, encodeRequest } from '../src/agent/protocol';
import { AgentServer, AgentServerOptions, ConnectionContext } from '../src/agent/server';
import { WireReader } from '../src/ssh/wire';

const frame = (body: Buffer): Buffer => {
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
};

let dir: string;
let n = 0;
let ed: TestKey;
let ec: TestKey;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-server-'));
  [ed, ec] = await Promise.all([generateTestKey('ed25519'), generateTestKey('ecdsa-p256')]);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function serve(
  agent: Keyring<ConnectionContext>,
  opts: AgentServerOptions = {},
): Promise<{ server: AgentServer; sock: string; logs: string[] }> {
  const logs: string[] = [];
  const server = new AgentServer(agent, {
    log: (m) => logs.push(m),
    ...opts,
  });
  const sock = path.join(dir, `agent-${n++}.sock`);
  await server.listen(sock);
  return { server, sock, logs };
}

const add = (k: TestKey, comment: string, constraints = {}): OutgoingRequest => ({
  type: 'add',
  keyType: k.keyType,
  fields: k.fields,
  comment,
  constraints: { extensions: [], ...constraints },
});

describe('AgentServer over a socket, with an in-memory keyring', () => {
  let server: AgentServer;
  let sock: string;
  let c: AgentClient;
  const keyring = new Keyring<ConnectionContext>({ unlockDelayMs: 1 });
  before(async () => {
    ({ server, sock } = await serve(keyring, {
      extensions: {
        'own@tsagent': async (contents) => ({
          type: 'extension-response',
          name: 'own@tsagent',
          contents: Buffer.concat([Buffer.from('got:'), contents]),
        }),
      },
    }));
    c = await AgentClient.connect(sock);
  });
  after(async () => {
    c.close();
    await server.close();
  });

  const ask = (r: OutgoingRequest) => c.request(r);
  const type = async (r: OutgoingRequest) => (await ask(r)).type;

  test('REQUEST_IDENTITIES of an empty agent', async () => {
    assert.deepEqual(await ask({ type: 'request-identities' }), {
      type: 'identities',
      identities: [],
    });
  });

  test('ADD_IDENTITY and ADD_ID_CONSTRAINED, then listed in order with comments', async () => {
    assert.equal(await type(add(ed, 'ed-key')), 'success');
    assert.equal(await type(add(ec, 'ec-key', { lifetime: 600 })), 'success');
    const r = await ask({ type: 'request-identities' });
    assert.equal(r.type, 'identities');
    if (r.type !== 'identities') return;
    assert.deepEqual(
      r.identities.map((i) => [i.keyBlob, i.comment.toString()]),
      [
        [ed.publicBlob, 'ed-key'],
        [ec.publicBlob, 'ec-key'],
      ],
    );
  });

  test('SIGN_REQUEST: a signature that verifies; an unknown key: FAILURE', async () => {
    const data = Buffer.from('data to sign');
    for (const k of [ed, ec]) {
      const r = await ask({ type: 'sign', keyBlob: k.publicBlob, data, flags: 0 });
      assert.equal(r.type, 'signature');
      if (r.type === 'signature') assert.ok(verifySignature(k.publicBlob, data, r.signature));
    }
    const other = await generateTestKey('ed25519');
    assert.equal(
      await type({ type: 'sign', keyBlob: other.publicBlob, data, flags: 0 }),
      'failure',
    );
  });

  test('REMOVE_IDENTITY: SUCCESS, then FAILURE for the key now gone', async () => {
    assert.equal(await type({ type: 'remove', keyBlob: ec.publicBlob }), 'success');
    assert.equal(await type({ type: 'remove', keyBlob: ec.publicBlob }), 'failure');
    assert.equal(keyring.size, 1);
  });

  test('LOCK / UNLOCK: locked lists nothing and signs nothing; a wrong passphrase fails', async () => {
    assert.equal(await type({ type: 'lock', passphrase: Buffer.from('pw') }), 'success');
    assert.equal(await type({ type: 'lock', passphrase: Buffer.from('pw') }), 'failure');
    assert.deepEqual(await ask({ type: 'request-identities' }), {
      type: 'identities',
      identities: [],
    });
    const data = Buffer.from('x');
    assert.equal(await type({ type: 'sign', keyBlob: ed.publicBlob, data, flags: 0 }), 'failure');
    assert.equal(await type(add(ec, 'while locked')), 'failure');
    assert.equal(await type({ type: 'unlock', passphrase: Buffer.from('wrong') }), 'failure');
    assert.equal(await type({ type: 'unlock', passphrase: Buffer.from('pw') }), 'success');
    assert.equal(keyring.size, 1);
  });

  test('REMOVE_ALL_IDENTITIES', async () => {
    assert.equal(await type(add(ec, 'ec-key')), 'success');
    assert.equal(await type({ type: 'remove-all' }), 'success');
    assert.equal(keyring.size, 0);
  });

  test('smartcard messages and unknown types: FAILURE', async () => {
    for (const code of [
      MSG.ADD_SMARTCARD_KEY,
      MSG.REMOVE_SMARTCARD_KEY,
      MSG.ADD_SMARTCARD_KEY_CONSTRAINED,
      1,
      9,
      99,
      255,
    ])
      assert.equal((await c.raw(frame(Buffer.of(code))))[0], MSG.FAILURE, `type ${code}`);
  });

  test('EXTENSION: query lists what is served; own extensions answer; others FAILURE', async () => {
    const q = await ask({ type: 'extension', name: 'query', contents: Buffer.alloc(0) });
    assert.equal(q.type, 'extension-response');
    if (q.type === 'extension-response') {
      const r = new WireReader(q.contents);
      const names: string[] = [];
      while (r.remaining > 0) names.push(r.text());
      assert.deepEqual(names, ['query', 'session-bind@openssh.com', 'own@tsagent']);
    }
    const own = await ask({ type: 'extension', name: 'own@tsagent', contents: Buffer.from('x') });
    assert.deepEqual(own, {
      type: 'extension-response',
      name: 'own@tsagent',
      contents: Buffer.from('got:x'),
    });
    assert.equal(
      await type({ type: 'extension', name: 'nope@example', contents: Buffer.alloc(0) }),
      'failure',
    );
    // A session-bind whose signature does not verify.
    const bad = encodeRequest({
      type: 'extension',
      name: 'session-bind@openssh.com',
      contents: Buffer.alloc(12),
    });
    assert.equal((await c.raw(bad))[0], MSG.FAILURE);
  });

  test('malformed messages: FAILURE, and the connection keeps working', async () => {
    for (const body of [
      Buffer.alloc(0), // empty
      Buffer.of(MSG.REQUEST_IDENTITIES, 0), // trailing byte
      Buffer.of(MSG.SIGN_REQUEST, 0, 0, 0, 9, 1), // truncated
      Buffer.of(MSG.ADD_IDENTITY, 0, 0, 0, 3, 0x66, 0x6f, 0x6f), // unknown key type
      Buffer.of(MSG.REMOVE_IDENTITY),
      Buffer.of(MSG.EXTENSION, 0, 0, 0xff, 0xff),
    ])
      assert.equal((await c.raw(frame(body)))[0], MSG.FAILURE, body.toString('hex'));
    assert.equal(await type({ type: 'request-identities' }), 'identities');
  });

  test('the connection was never closed', () => {
    assert.equal(server.connections, 1);
  });
});

describe('AgentServer: errors, malformed locks, limits', () => {
  test('an error thrown by the served agent becomes FAILURE; the connection survives', async () => {
    const throwing = new Keyring<ConnectionContext>();
    throwing.list = () => {
      throw new Error('boom');
    };
    const { server, sock, logs } = await serve(throwing);
    const c = await AgentClient.connect(sock);
    try {
      assert.equal((await c.request({ type: 'request-identities' })).type, 'failure');
      assert.equal((await c.request({ type: 'remove-all' })).type, 'success');
      assert.ok(
        logs.some((l) => /internal error: boom/.test(l)),
        logs.join('\n'),
      );
    } finally {
      c.close();
      await server.close();
    }
  });

  test('a malformed LOCK closes that connection and drops the keys; others are served', async () => {
    const keyring = new Keyring<ConnectionContext>();
    const { server, sock } = await serve(keyring);
    const c = await AgentClient.connect(sock);
    const other = await AgentClient.connect(sock);
    try {
      assert.equal((await c.request(add(ed, 'k'))).type, 'success');
      await assert.rejects(c.raw(frame(Buffer.of(MSG.LOCK, 0, 0, 0, 50, 1))), /closed/);
      // No vault to unlock with: every key is gone and the agent stays open.
      assert.equal(keyring.size, 0);
      assert.equal(keyring.locked, false);
      const r = await other.request({ type: 'request-identities' });
      assert.deepEqual(r, { type: 'identities', identities: [] });
      assert.equal((await other.request(add(ed, 'again'))).type, 'success');
    } finally {
      c.close();
      other.close();
      await server.close();
    }
  });

  test('a message over the size limit closes the connection', async () => {
    const { server, sock, logs } = await serve(new Keyring<ConnectionContext>());
    const c = await AgentClient.connect(sock);
    try {
      await assert.rejects(c.raw(Buffer.of(0x00, 0x10, 0x00, 0x01, MSG.REQUEST_IDENTITIES)));
      assert.ok(logs.some((l) => /over the limit/.test(l)));
    } finally {
      c.close();
      await server.close();
    }
  });

  test('pipelined requests are answered in order', async () => {
    const { server, sock } = await serve(new Keyring<ConnectionContext>());
    const c = await AgentClient.connect(sock, { pipelined: true });
    try {
      const frames = [
        encodeRequest(add(ed, 'p')),
        encodeRequest({ type: 'request-identities' }),
        encodeRequest({ type: 'remove', keyBlob: ed.publicBlob }),
        encodeRequest({ type: 'request-identities' }),
      ];
      const replies = await Promise.all(c.rawBatch(frames));
      assert.deepEqual(
        replies.map((r) => r[0]),
        [MSG.SUCCESS, MSG.IDENTITIES_ANSWER, MSG.SUCCESS, MSG.IDENTITIES_ANSWER],
      );
      assert.equal(replies[1].readUInt32BE(1), 1);
      assert.equal(replies[3].readUInt32BE(1), 0);
    } finally {
      c.close();
      await server.close();
    }
  });

  test('onSign (audit) runs before the reply is written, afterSign (vault last-use) after it', async () => {
    const events: string[] = [];
    const keyring = new Keyring<ConnectionContext>();
    const { server, sock } = await serve(keyring, {
      // The server side of each connection: note when a reply is written.
      peerOf: (s: net.Socket) => {
        const write = s.write.bind(s) as (b: Buffer) => boolean;
        s.write = ((b: Buffer) => {
          events.push(`write ${b[4]}`);
          return write(b);
        }) as typeof s.write;
        return { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
      },
      onSign: (ev) => events.push(`onSign ${ev.result.ok}`),
      afterSign: (ev) => events.push(`afterSign ${ev.result.ok}`),
    });
    const c = await AgentClient.connect(sock);
    try {
      assert.equal((await c.request(add(ed, 'k'))).type, 'success');
      const sig: Response = await c.request({
        type: 'sign',
        keyBlob: ed.publicBlob,
        data: Buffer.from('d'),
        flags: 0,
      });
      assert.equal(sig.type, 'signature');
      assert.deepEqual(events, [
        `write ${MSG.SUCCESS}`,
        'onSign true',
        `write ${MSG.SIGN_RESPONSE}`,
        'afterSign true',
      ]);
    } finally {
      c.close();
      await server.close();
    }
  });
});
