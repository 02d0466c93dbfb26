// Approval windows (issue 14, --confirm-window) with the real OpenSSH tools and
// git: one "yes" covers the same key, session and kind of data for LIFE; another
// session (setsid), another namespace, `tsagent approvals clear` and a lock ask
// again; without the flag every use asks, as with OpenSSH's agent.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readAudit } from '../src/agent/audit';
import {
  AGENTS,
  AgentSpec,
  RunningAgent,
  TSAGENTS,
  TSAGENT_MAIN,
  frame,
  rawRequest,
  sshString,
  startAgent,
} from './fixtures/agent';
import { Askpass, TestKey, keyType, makeKey } from './fixtures/keys';
import { SSH_ADD, SSH_KEYGEN, baseEnv, mkTemp, rmTemp, run, skipUnless } from './fixtures/run';

const GIT = '/usr/bin/git';
const SETSID = '/usr/bin/setsid';

interface World {
  dir: string;
  key: TestKey;
  ask: Askpass;
  agent: RunningAgent;
  auditFile: string;
}

async function world(spec: AgentSpec, args: string[]): Promise<World> {
  const dir = mkTemp();
  const key = await makeKey(dir, keyType('ed25519'), { comment: 'window-key' });
  const ask = new Askpass(dir);
  ask.answer('yes');
  const auditFile = path.join(dir, 'audit.log');
  const agent = await startAgent(spec, {
    args: spec.kind === 'tsagent' ? ['--audit-log', auditFile, ...args] : args,
    env: { SSH_ASKPASS: ask.program, SSH_ASKPASS_REQUIRE: 'force' },
  });
  const add = await run(SSH_ADD, ['-c', key.priv], { env: baseEnv({ SSH_AUTH_SOCK: agent.sock }) });
  assert.equal(add.code, 0, add.stderr);
  return { dir, key, ask, agent, auditFile };
}

/** `ssh-keygen -Y sign -n NS` of a fresh file; optionally in a new session (setsid -w). */
async function keygenSign(w: World, ns: string, newSession = false): Promise<void> {
  const msg = path.join(w.dir, `msg-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(msg, 'payload\n');
  const argv = ['-Y', 'sign', '-f', w.key.pub, '-n', ns, msg];
  const r = newSession
    ? await run(SETSID, ['-w', SSH_KEYGEN, ...argv], { env: env(w), timeout: 30_000 })
    : await run(SSH_KEYGEN, argv, { env: env(w), timeout: 30_000 });
  assert.equal(r.code, 0, r.stderr);
}

const env = (w: World) => baseEnv({ SSH_AUTH_SOCK: w.agent.sock });
const tsagent = (w: World, ...args: string[]) =>
  run(process.execPath, [TSAGENT_MAIN, ...args], { env: env(w) });

for (const spec of TSAGENTS)
  describe(
    `${spec.name} --confirm-window 5m`,
    { skip: skipUnless([SSH_ADD, SSH_KEYGEN, GIT, SETSID]) },
    () => {
      let w: World;
      before(async () => {
        w = await world(spec, ['--confirm-window', '5m']);
      });
      after(async () => {
        await w?.agent.stop();
        rmTemp(w?.dir);
      });

      test('20 ssh-keygen -Y sign -n git from one session ask once; each use is audited', async () => {
        w.ask.reset();
        const before = readAudit(w.auditFile).length;
        for (let i = 0; i < 20; i++) await keygenSign(w, 'git');
        assert.equal(w.ask.calls().length, 1);
        const records = readAudit(w.auditFile).slice(before);
        assert.equal(records.length, 20);
        assert.ok(records.every((r) => r.decision === 'allowed'));
        assert.equal(records[0].approval, undefined, 'the first use was asked');
        const id = records[1].approval;
        assert.equal(typeof id, 'number');
        assert.ok(
          records.slice(1).every((r) => r.approval === id),
          'the rest rode on it',
        );
        const log = await tsagent(w, 'log', '--file', w.auditFile);
        assert.match(log.stdout, new RegExp(`covered by approval ${id}`));
      });

      test('five git commit -S in the same window ask no more, and all verify', async () => {
        w.ask.reset();
        const repo = path.join(w.dir, 'repo');
        const signers = path.join(w.dir, 'allowed_signers');
        fs.writeFileSync(signers, `t@example.com ${w.key.publicLine}\n`);
        const git = (...args: string[]) =>
          run(GIT, ['-C', repo, ...args], {
            env: { ...env(w), GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
            timeout: 30_000,
          });
        fs.mkdirSync(repo);
        for (const args of [
          ['init', '-q'],
          ['config', 'user.name', 'T'],
          ['config', 'user.email', 't@example.com'],
          ['config', 'gpg.format', 'ssh'],
          ['config', 'user.signingkey', w.key.pub],
          ['config', 'gpg.ssh.allowedSignersFile', signers],
        ])
          assert.equal((await git(...args)).code, 0);
        for (let i = 0; i < 5; i++) {
          const r = await git('commit', '-q', '-S', '--allow-empty', '-m', `c${i}`);
          assert.equal(r.code, 0, r.stderr);
        }
        const log = await git('log', '--format=%G?');
        assert.equal(log.stdout, 'G\nG\nG\nG\nG\n');
        assert.equal(w.ask.calls().length, 0, 'git signatures ride on the open git window');
      });

      test('tsagent status lists the open window with its time left', async () => {
        const r = await tsagent(w, 'status', '--json');
        const st = JSON.parse(r.stdout) as { approvals?: Record<string, unknown>[] };
        const git = st.approvals?.find((a) => a.destination === 'git signatures');
        assert.ok(git, r.stdout);
        assert.equal(git.key, w.key.fingerprint);
        assert.equal(git.forwarded, false);
        assert.ok((git.remaining as number) > 0 && (git.remaining as number) <= 300);
        const text = await tsagent(w, 'status');
        assert.match(
          text.stdout,
          /approvals: 1 open\n {2}SHA256:\S+ git signatures, session \d+: /,
        );
      });

      test('another session (setsid) and another namespace ask again', async () => {
        w.ask.reset();
        await keygenSign(w, 'git', true);
        assert.equal(w.ask.calls().length, 1, 'a new session is asked');
        await keygenSign(w, 'file');
        assert.equal(w.ask.calls().length, 2, 'another kind of data is asked');
        await keygenSign(w, 'file');
        await keygenSign(w, 'git');
        assert.equal(w.ask.calls().length, 2);
      });

      test('tsagent approvals clear and a lock end every window', async () => {
        w.ask.reset();
        const clear = await tsagent(w, 'approvals', 'clear');
        assert.equal(clear.code, 0, clear.stderr);
        assert.equal(clear.stdout, 'Approval windows closed.\n');
        await keygenSign(w, 'git');
        assert.equal(w.ask.calls().length, 1);
        await keygenSign(w, 'git');
        assert.equal(w.ask.calls().length, 1);
        // SSH_AGENTC_LOCK (22) and UNLOCK (23) with a passphrase, as ssh-add -x/-X send them.
        const lock = await rawRequest(
          w.agent.sock,
          frame(Buffer.concat([Buffer.of(22), sshString('pw')])),
        );
        assert.ok(Buffer.isBuffer(lock) && lock[0] === 6, 'locked');
        const unlock = await rawRequest(
          w.agent.sock,
          frame(Buffer.concat([Buffer.of(23), sshString('pw')])),
        );
        assert.ok(Buffer.isBuffer(unlock) && unlock[0] === 6, 'unlocked');
        await keygenSign(w, 'git');
        assert.equal(w.ask.calls().length, 2, 'the lock closed the window');
        const st = JSON.parse((await tsagent(w, 'status', '--json')).stdout);
        assert.equal(st.approvals.length, 1);
      });

      test('a key removed (ssh-add -d) ends its windows: added again, it asks again', async () => {
        w.ask.reset();
        await keygenSign(w, 'git');
        assert.equal(w.ask.calls().length, 0, 'the window of the last test is open');
        const ssh = (...args: string[]) => run(SSH_ADD, args, { env: env(w) });
        assert.equal((await ssh('-d', w.key.pub)).code, 0);
        assert.equal((await ssh('-c', w.key.priv)).code, 0);
        await keygenSign(w, 'git');
        assert.equal(w.ask.calls().length, 1);
      });
    },
  );

for (const spec of AGENTS)
  describe(
    `${spec.name} without --confirm-window`,
    { skip: skipUnless([SSH_ADD, SSH_KEYGEN]) },
    () => {
      let w: World;
      before(async () => {
        w = await world(spec, []);
      });
      after(async () => {
        await w?.agent.stop();
        rmTemp(w?.dir);
      });

      test('every use asks, as with OpenSSH', async () => {
        w.ask.reset();
        for (let i = 0; i < 3; i++) await keygenSign(w, 'git');
        assert.equal(w.ask.calls().length, 3);
      });
    },
  );
