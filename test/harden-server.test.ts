// The server's limits and checks (hardening issue, in-process): session ids
// over 128 bytes, binds counted before they are verified, a deadline for a new
// connection's first message, the connection limit from the open-file limit,
// a peer check that fails closed, request chunks wiped, the requester's command
// line read at accept, confirm prompts one at a time.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as net from 'node:net';
import { describe, test } from 'node:test';
import { AgentClient } from '../src/agent/client';
import { askConfirm } from '../src/agent/confirm';
import { connectionsForFiles, openFileLimit } from '../src/agent/file-limit';
import { Keyring } from '../src/agent/keyring';
import { peerCredConstants, peerCredentials, processCommand } from '../src/agent/peer';
import { MSG } from '../src/agent/protocol';
import { ConnectionContext } from '../src/agent/server';
import { WireWriter } from '../src/ssh/wire';
import { makeSigner, sessionBind } from './fuzz/corpus';
import { SELF, connectRaw, frame, serveInProcess } from './fixtures/server';
import { sleep } from './fixtures/run';

const keyring = () => new Keyring<ConnectionContext>({ unlockDelayMs: 1 });

describe('session-bind limits (ssh-agent.c process_ext_session_bind)', () => {
  const host = makeSigner();

  test('a session id over 128 bytes is refused (AGENT_MAX_SID_LEN); 128 bytes is bound', async () => {
    const a = await serveInProcess(keyring());
    const c = await AgentClient.connect(a.sock);
    const d = await AgentClient.connect(a.sock);
    try {
      const long = await c.raw(frame(sessionBind(host, Buffer.alloc(129, 1), false)));
      assert.equal(long[0], MSG.FAILURE);
      assert.ok(
        a.logs.some((l) => /session ID of 129 bytes is too long/.test(l)),
        a.logs.join(),
      );
      const ok = await d.raw(frame(sessionBind(host, Buffer.alloc(128, 1), false)));
      assert.equal(ok[0], MSG.SUCCESS);
    } finally {
      c.close();
      d.close();
      await a.close();
    }
  });

  test('binds are counted before they are verified: after 16 bad ones a good one is refused', async () => {
    const a = await serveInProcess(keyring());
    const c = await AgentClient.connect(a.sock);
    try {
      const other = makeSigner();
      for (let i = 0; i < 16; i++) {
        const sid = Buffer.alloc(32, i);
        // Host key A, signature by B: does not verify.
        const bad = new WireWriter()
          .byte(MSG.EXTENSION)
          .string('session-bind@openssh.com')
          .string(host.blob)
          .string(sid)
          .string(other.sign(sid))
          .bool(true)
          .toBuffer();
        assert.equal((await c.raw(frame(bad)))[0], MSG.FAILURE);
      }
      const good = await c.raw(frame(sessionBind(host, Buffer.alloc(32, 99), true)));
      assert.equal(good[0], MSG.FAILURE, 'a 17th bind was verified and recorded');
      assert.ok(a.logs.some((l) => /too many session binds/.test(l)));
    } finally {
      c.close();
      await a.close();
    }
  });
});

describe('connections that hold a slot', () => {
  test('no complete first message within the deadline: closed; a talking one stays', async () => {
    const a = await serveInProcess(keyring(), { firstMessageTimeoutMs: 300 });
    try {
      const silent = await connectRaw(a.sock);
      const half = await connectRaw(a.sock);
      half.s.write(Buffer.of(0, 0, 0, 5, MSG.REQUEST_IDENTITIES));
      const talking = await AgentClient.connect(a.sock);
      assert.equal((await talking.request({ type: 'request-identities' })).type, 'identities');
      const t0 = Date.now();
      await Promise.all([silent.closed, half.closed]);
      assert.ok(Date.now() - t0 < 3000);
      await sleep(400);
      assert.equal((await talking.request({ type: 'request-identities' })).type, 'identities');
      assert.ok(a.logs.some((l) => /no complete message in 300 ms/.test(l)));
      talking.close();
    } finally {
      await a.close();
    }
  });

  test('the connection limit follows the open-file limit, less headroom', async () => {
    assert.equal(
      openFileLimit('Max open files            1024                 4096      files\n'),
      1024,
    );
    assert.equal(
      openFileLimit('Max open files            unlimited            unlimited files\n'),
      undefined,
    );
    assert.ok((openFileLimit() ?? 0) > 0, 'RLIMIT_NOFILE read from /proc/self/limits');
    assert.equal(connectionsForFiles(1024), 960);
    assert.equal(connectionsForFiles(10), 1);
    const a = await serveInProcess(keyring(), { openFileLimit: 70, maxConnections: 1000 });
    const clients: AgentClient[] = [];
    try {
      assert.equal(a.server.maxConnections, 6);
      const byDefault = await serveInProcess(keyring(), { openFileLimit: 1000 });
      assert.equal(byDefault.server.maxConnections, 936);
      await byDefault.close();
      for (let i = 0; i < 6; i++) {
        const c = await AgentClient.connect(a.sock);
        clients.push(c);
        assert.equal((await c.request({ type: 'request-identities' })).type, 'identities');
      }
      const seventh = await connectRaw(a.sock);
      await seventh.closed;
      assert.ok(a.logs.some((l) => /refusing connection: 6 connections open/.test(l)));
    } finally {
      for (const c of clients) c.close();
      await a.close();
    }
  });
});

describe('the peer check fails closed', () => {
  test('peerOf throwing or knowing nothing: refused, and why is logged once', async () => {
    let calls = 0;
    const a = await serveInProcess(keyring(), {
      peerOf: () => {
        calls++;
        if (calls <= 2) throw new Error('koffi is not installed');
        return undefined;
      },
    });
    try {
      for (let i = 0; i < 3; i++) {
        const c = await connectRaw(a.sock);
        c.s.write(frame(Buffer.of(MSG.REQUEST_IDENTITIES)));
        let replied = false;
        c.s.on('data', () => (replied = true));
        await c.closed;
        assert.equal(replied, false, 'served without a peer check');
      }
      assert.equal(calls, 3);
      const lines = a.logs.filter((l) => /SO_PEERCRED/.test(l));
      assert.equal(lines.length, 1, a.logs.join('\n'));
      assert.match(lines[0], /koffi is not installed/);
      assert.equal(a.server.connections, 0);
    } finally {
      await a.close();
    }
  });

  test('SOL_SOCKET/SO_PEERCRED per architecture; unknown ones get no guess', () => {
    assert.deepEqual(peerCredConstants('x64'), { level: 1, name: 17 });
    assert.deepEqual(peerCredConstants('arm64'), { level: 1, name: 17 });
    assert.deepEqual(peerCredConstants('mipsel'), { level: 0xffff, name: 18 });
    assert.deepEqual(peerCredConstants('ppc64'), { level: 1, name: 21 });
    assert.equal(peerCredConstants('sparc'), undefined);
  });

  test('on this machine the peer is read: this process, through a real socket', async () => {
    let seen: ReturnType<typeof peerCredentials> | undefined;
    const a = await serveInProcess(keyring(), {
      peerOf: (s: net.Socket) => (seen = peerCredentials(s)),
    });
    const c = await AgentClient.connect(a.sock);
    try {
      assert.equal((await c.request({ type: 'request-identities' })).type, 'identities');
      assert.deepEqual(seen, SELF());
    } finally {
      c.close();
      await a.close();
    }
  });
});

test('the socket chunks a request came from are wiped, not only the joined request', async () => {
  const chunks: Buffer[] = [];
  const kr = keyring();
  const a = await serveInProcess(kr, {
    // Sees each chunk the server reads, before the framer does.
    peerOf: (s: net.Socket) => {
      s.on('data', (d: Buffer) => chunks.push(d));
      return SELF();
    },
  });
  const pass = Buffer.from('split-lock-passphrase-4c1d');
  const lock = frame(new WireWriter().byte(MSG.LOCK).string(pass).toBuffer());
  const c = await connectRaw(a.sock);
  try {
    const reply = new Promise<Buffer>((r) => c.s.once('data', r));
    c.s.write(lock.subarray(0, 14));
    await sleep(100);
    c.s.write(lock.subarray(14));
    assert.equal((await reply)[4], MSG.SUCCESS);
    assert.ok(kr.locked);
    assert.ok(chunks.length >= 2, `${chunks.length} chunks`);
    for (const ch of chunks)
      assert.ok(
        ch.every((b) => b === 0),
        `a chunk still holds ${JSON.stringify(ch.toString('latin1'))}`,
      );
  } finally {
    c.s.destroy();
    await a.close();
  }
});

test("the requester's command line is read at accept: a later rewrite does not change it", async () => {
  let atRequest: { recorded?: string; now: string } | undefined;
  const a = await serveInProcess(keyring(), {
    peerOf: peerCredentials,
    extensions: {
      'who@test': async (_c, ctx) => {
        atRequest = { recorded: ctx.peer?.command, now: processCommand(ctx.peer!.pid) };
        return { type: 'success' };
      },
    },
  });
  try {
    const req = frame(new WireWriter().byte(MSG.EXTENSION).string('who@test').toBuffer());
    const script = `
      const s = require('node:net').connect(process.argv[1]);
      s.on('connect', () => setTimeout(() => {
        process.title = 'x'.repeat(3) + '-rewritten';
        setTimeout(() => s.write(Buffer.from(process.argv[2], 'hex')), 100);
      }, 400));
      s.on('data', () => s.end());`;
    const child = spawn(process.execPath, ['-e', script, a.sock, req.toString('hex')], {
      stdio: 'ignore',
    });
    await new Promise((r) => child.on('exit', r));
    assert.ok(atRequest, 'the request did not arrive');
    assert.match(atRequest.now, /xxx-rewritten/, 'the child did not rewrite its command line');
    assert.match(atRequest.recorded ?? '', /-e/);
    assert.doesNotMatch(atRequest.recorded ?? '', /xxx-rewritten/);
  } finally {
    await a.close();
  }
});

test('confirm prompts are shown one at a time, in order', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-confirm-'));
  try {
    const log = path.join(dir, 'log');
    const askpass = path.join(dir, 'askpass.sh');
    // Records its start and end; a second dialog open at once shows as "overlap".
    fs.writeFileSync(
      askpass,
      [
        '#!/bin/sh',
        `if [ -e '${dir}/open' ]; then echo overlap >> '${log}'; fi`,
        `touch '${dir}/open'; echo "start $1" >> '${log}'`,
        'sleep 0.3',
        `echo "end $1" >> '${log}'; rm -f '${dir}/open'`,
        'exit 0',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const env = { PATH: process.env.PATH, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force' };
    const answers = await Promise.all(['one', 'two', 'three'].map((p) => askConfirm(p, env)));
    assert.deepEqual(answers, [true, true, true]);
    assert.deepEqual(fs.readFileSync(log, 'utf8').trim().split('\n'), [
      'start one',
      'end one',
      'start two',
      'end two',
      'start three',
      'end three',
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('names and reasons from a request reach the log escaped', async () => {
  const a = await serveInProcess(keyring());
  const c = await AgentClient.connect(a.sock);
  try {
    const name = 'evil\n[fake] unlock ok\x1b[2J\u202e';
    const ext = new WireWriter().byte(MSG.EXTENSION).string(name).toBuffer();
    assert.equal((await c.raw(frame(ext)))[0], MSG.FAILURE);
    const line = a.logs.find((l) => /unsupported extension/.test(l))!;
    assert.equal(line.includes('\n') || line.includes('\x1b') || line.includes('\u202e'), false);
    assert.match(line, /evil\\n\[fake\] unlock ok\\x1b\[2J\\u\{202e\}/);
  } finally {
    c.close();
    await a.close();
  }
});
