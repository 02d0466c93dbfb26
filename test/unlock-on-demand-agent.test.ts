// Unlock on demand (issue 14) with the real OpenSSH tools: an agent started
// with a vault answers three parallel `ssh-keygen -Y sign` after one passphrase
// prompt (SSH_ASKPASS); after a cancelled prompt the next requests fail for a
// while without prompting; a forwarded connection never prompts; and
// --no-unlock-prompt turns it off.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { frame, sshString } from './fixtures/agent';
import { SSH_ADD, SSH_KEYGEN, run, skipUnless } from './fixtures/run';
import { NO_IDENTITIES, VAULT_PASS, VaultAgent, VaultWorld } from './fixtures/vault-agent';

/** An askpass that records each call, takes a second (so requests overlap), then answers. */
function slowAskpass(dir: string) {
  const program = path.join(dir, 'slow-askpass.sh');
  const log = path.join(dir, 'slow-askpass.log');
  const answer = path.join(dir, 'slow-askpass.answer');
  fs.writeFileSync(
    program,
    [
      '#!/bin/sh',
      `printf 'PROMPT=%s ARGV=%s\\036' "\${SSH_ASKPASS_PROMPT-<unset>}" "$1" >> '${log}'`,
      'sleep 1',
      `read -r status text < '${answer}'`,
      'printf "%s\\n" "$text"',
      'exit "$status"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return {
    program,
    answer: (text: string, status = 0) => fs.writeFileSync(answer, `${status} ${text}\n`),
    calls: (): string[] => {
      try {
        return fs.readFileSync(log, 'utf8').split('\x1e').filter(Boolean);
      } catch {
        return [];
      }
    },
  };
}

/** Several requests on one connection, each answered in turn (reply bodies). */
function requests(sock: string, bodies: Buffer[]): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    const replies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => (s.destroy(), reject(new Error('no reply'))), 20_000);
    s.on('connect', () => s.write(Buffer.concat(bodies.map(frame))));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        replies.push(buf.subarray(4, 4 + buf.readUInt32BE(0)));
        buf = buf.subarray(4 + buf.readUInt32BE(0));
      }
      if (replies.length === bodies.length) {
        clearTimeout(timer);
        s.destroy();
        resolve(replies);
      }
    });
    s.on('error', reject);
  });
}

describe('unlock on demand', { skip: skipUnless([SSH_ADD, SSH_KEYGEN]) }, () => {
  let world: VaultWorld;
  let ask: ReturnType<typeof slowAskpass>;
  let pub: string;
  const askEnv = () => ({ SSH_ASKPASS: ask.program, SSH_ASKPASS_REQUIRE: 'force' });

  before(async () => {
    world = new VaultWorld({ explicitVault: true });
    ask = slowAskpass(world.work);
    await world.init();
    const r = await world.vault(['generate', '-t', 'ed25519', '-C', 'on-demand']);
    pub = path.join(world.work, 'on-demand.pub');
    fs.writeFileSync(pub, r.stdout.trim() + '\n');
  });
  after(() => world.cleanup());

  /**
   * An agent that is locked with its vault, and a call log to count from. The
   * fixture's readiness probe (a REQUEST_IDENTITIES) already unlocks on demand,
   * so it is locked again with `tsagent lock` (a success leaves no back-off).
   */
  async function lockedAgent(args: string[] = []): Promise<{ agent: VaultAgent; base: number }> {
    ask.answer(VAULT_PASS);
    const agent = await world.startAgent({ args, env: askEnv() });
    if (!args.includes('--no-unlock-prompt'))
      assert.equal((await world.status(agent)).locked, false, 'the probe unlocked on demand');
    await world.tsagent(['lock', '--passphrase-fd', '3'], {
      sock: agent.sock,
      lines: ['a lock password'],
    });
    assert.equal((await world.status(agent)).locked, true);
    return { agent, base: ask.calls().length };
  }

  const signAll = (agent: VaultAgent, n: number) =>
    Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const msg = path.join(world.work, `m-${crypto.randomBytes(4).toString('hex')}-${i}`);
        fs.writeFileSync(msg, 'data\n');
        return run(SSH_KEYGEN, ['-Y', 'sign', '-f', pub, '-n', 'file', msg], {
          env: world.env({ SSH_AUTH_SOCK: agent.sock }),
          timeout: 30_000,
        });
      }),
    );

  test('three parallel ssh-keygen -Y sign: one prompt, all signed; a cancel holds off prompts', async () => {
    const { agent, base } = await lockedAgent();
    const signed = await signAll(agent, 3);
    for (const r of signed) assert.equal(r.code, 0, r.stderr);
    const calls = ask.calls().slice(base);
    assert.equal(calls.length, 1, JSON.stringify(calls));
    assert.match(calls[0], /^PROMPT=<unset> ARGV=Enter the passphrase of the tsagent vault/);
    assert.match(calls[0], /for pid \d+ \(.*ssh-keygen -Y sign/);
    assert.equal((await world.status(agent)).locked, false);

    // Locked again, and the prompt cancelled: every waiting request fails, one prompt.
    assert.equal(
      (
        await world.tsagent(['lock', '--passphrase-fd', '3'], {
          sock: agent.sock,
          lines: ['a lock password'],
        })
      ).code,
      0,
    );
    ask.answer('', 1);
    const refused = await signAll(agent, 3);
    for (const r of refused) assert.notEqual(r.code, 0);
    assert.equal(ask.calls().length, base + 2);
    // For a while, further requests fail at once without prompting.
    ask.answer(VAULT_PASS);
    assert.notEqual((await signAll(agent, 1))[0].code, 0);
    const l = await world.sshAdd(agent, ['-l']);
    assert.equal(l.stdout, NO_IDENTITIES);
    assert.equal(ask.calls().length, base + 2, 'no prompt during the back-off');
    assert.equal((await world.status(agent)).locked, true);
    await agent.stop();
  });

  test('a wrong passphrase answers as locked; the agent stays locked', async () => {
    const { agent, base: before } = await lockedAgent();
    ask.answer('not the passphrase');
    const l = await world.sshAdd(agent, ['-l']);
    assert.equal(l.stdout, NO_IDENTITIES);
    assert.equal(ask.calls().length, before + 1);
    assert.equal((await world.status(agent)).locked, true);
    await agent.stop();
  });

  test('a forwarded connection never causes a prompt', async () => {
    const { agent, base: before } = await lockedAgent();
    // A session-bind that fails to verify makes the connection count as forwarded (issue 11).
    const hostKey = Buffer.concat([sshString('ssh-ed25519'), sshString(crypto.randomBytes(32))]);
    const bind = Buffer.concat([
      Buffer.of(27),
      sshString('session-bind@openssh.com'),
      sshString(hostKey),
      sshString(crypto.randomBytes(32)),
      sshString(Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.alloc(64))])),
      Buffer.of(1),
    ]);
    const [, ids] = await requests(agent.sock, [bind, Buffer.of(11)]);
    assert.deepEqual([...ids], [12, 0, 0, 0, 0], 'no identities, locked');
    assert.equal(ask.calls().length, before, 'no prompt');
    // The same agent prompts for a local request, so it was the forwarding that held it off.
    const l = await world.sshAdd(agent, ['-l']);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /on-demand/);
    assert.equal(ask.calls().length, before + 1);
    await agent.stop();
  });

  test('--no-unlock-prompt: a locked agent answers as locked and never prompts', async () => {
    const { agent, base: before } = await lockedAgent(['--no-unlock-prompt']);
    assert.equal((await world.sshAdd(agent, ['-l'])).stdout, NO_IDENTITIES);
    assert.notEqual((await signAll(agent, 1))[0].code, 0);
    assert.equal(ask.calls().length, before);
    await agent.stop();
  });
});
