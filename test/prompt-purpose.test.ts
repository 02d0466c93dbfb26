// Prompts that say what is signed (issue 14), with the real OpenSSH tools: the
// confirm prompt and the audit record of `ssh-keygen -Y sign -n git` name git,
// those of a login to a test sshd name the user and the host (verified through
// the agent's known_hosts, else marked unverified), and `ssh-add -T`'s random
// data is "unrecognised".

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readAudit } from '../src/agent/audit';
import { fingerprint } from '../src/ssh/fingerprint';
import { RunningAgent, TSAGENTS, startAgent } from './fixtures/agent';
import { Askpass, TestKey, keyType, makeKey } from './fixtures/keys';
import {
  SSH,
  SSHD,
  SSH_ADD,
  SSH_KEYGEN,
  baseEnv,
  mkTemp,
  rmTemp,
  run,
  skipUnless,
} from './fixtures/run';
import { Sshd, sshLogin, startSshd } from './fixtures/sshd';

for (const spec of TSAGENTS)
  describe(
    `${spec.name}: what is signed, in the prompt and the audit log`,
    { skip: skipUnless([SSH, SSHD, SSH_ADD, SSH_KEYGEN]) },
    () => {
      let dir: string;
      let home: string;
      let key: TestKey;
      let ask: Askpass;
      let agent: RunningAgent;
      let sshd: Sshd;
      let auditFile: string;
      const env = () => baseEnv({ SSH_AUTH_SOCK: agent.sock });

      before(async () => {
        dir = mkTemp();
        home = path.join(dir, 'home');
        fs.mkdirSync(path.join(home, '.ssh'), { recursive: true });
        key = await makeKey(dir, keyType('ed25519'), { comment: 'purpose-key' });
        ask = new Askpass(dir);
        ask.answer('yes');
        auditFile = path.join(dir, 'audit.log');
        sshd = await startSshd({ authorizedKeys: key.publicLine + '\n' });
        agent = await startAgent(spec, {
          args: ['--audit-log', auditFile],
          env: { SSH_ASKPASS: ask.program, SSH_ASKPASS_REQUIRE: 'force', HOME: home },
        });
        const add = await run(SSH_ADD, ['-c', key.priv], { env: env() });
        assert.equal(add.code, 0, add.stderr);
      });
      after(async () => {
        await agent?.stop();
        await sshd?.stop();
        rmTemp(dir);
      });

      const lastAudit = () => readAudit(auditFile).at(-1);

      test('ssh-keygen -Y sign -n git: "sign a git commit or tag"', async () => {
        ask.reset();
        const msg = path.join(dir, 'commit');
        fs.writeFileSync(msg, 'tree 0\n\nmessage\n');
        const r = await run(SSH_KEYGEN, ['-Y', 'sign', '-f', key.pub, '-n', 'git', msg], {
          env: env(),
          timeout: 30_000,
        });
        assert.equal(r.code, 0, r.stderr);
        const calls = ask.calls();
        assert.equal(calls.length, 1);
        assert.equal(calls[0].prompt, 'confirm');
        assert.ok(
          calls[0].argv.startsWith(
            `Allow use of key purpose-key?\nKey fingerprint ${key.fingerprint}.\n` +
              'To sign a git commit or tag (namespace git).\n',
          ),
          calls[0].argv,
        );
        assert.equal(lastAudit()?.purpose, 'sign a git commit or tag (namespace git)');
        assert.equal(lastAudit()?.decision, 'allowed');
      });

      test('ssh-keygen -Y sign -n file, and an escaped namespace', async () => {
        ask.reset();
        const msg = path.join(dir, 'data');
        fs.writeFileSync(msg, 'data\n');
        for (const ns of ['file', 'evil\u202ens']) {
          const r = await run(SSH_KEYGEN, ['-Y', 'sign', '-f', key.pub, '-n', ns, msg], {
            env: env(),
            timeout: 30_000,
          });
          assert.equal(r.code, 0, r.stderr);
          fs.rmSync(`${msg}.sig`);
        }
        const calls = ask.calls();
        assert.match(calls[0].argv, /\nTo sign a file \(namespace file\)\.\n/);
        assert.ok(
          calls[1].argv.includes('\nTo sign evil\\u{202e}ns data (namespace evil\\u{202e}ns).\n'),
          calls[1].argv,
        );
        const purposeLine = calls[1].argv.split('\n').find((l) => l.startsWith('To '));
        assert.ok(!purposeLine?.includes('\u202e'), 'no raw bidi override in what is signed');
      });

      test('ssh-add -T: unrecognised data, by its length', async () => {
        ask.reset();
        const r = await run(SSH_ADD, ['-T', key.pub], { env: env() });
        assert.equal(r.code, 0, r.stderr);
        assert.match(ask.calls()[0].argv, /\nTo sign \d+ bytes of unrecognised data\.\n/);
        assert.match(lastAudit()?.purpose ?? '', /^sign \d+ bytes of unrecognised data$/);
      });

      test('a login to an sshd missing from known_hosts: the user, and the host unverified', async () => {
        ask.reset();
        fs.rmSync(path.join(home, '.ssh', 'known_hosts'), { force: true });
        const r = await sshLogin(sshd, agent.sock, ['true']);
        assert.equal(r.code, 0, r.stderr);
        const calls = ask.calls();
        assert.equal(calls.length, 1);
        const fp = fingerprint(Buffer.from(sshd.hostKey.split(' ')[1], 'base64'));
        assert.ok(
          calls[0].argv.includes(`\nTo log in as ${sshd.user} to ${fp} (unverified).\n`),
          calls[0].argv,
        );
        assert.equal(lastAudit()?.purpose, `log in as ${sshd.user} to ${fp} (unverified)`);
      });

      test("a login to an sshd in the agent owner's known_hosts: the user and the host", async () => {
        ask.reset();
        fs.writeFileSync(
          path.join(home, '.ssh', 'known_hosts'),
          `[127.0.0.1]:${sshd.port} ${sshd.hostKey}\n`,
        );
        const r = await sshLogin(sshd, agent.sock, ['true']);
        assert.equal(r.code, 0, r.stderr);
        const calls = ask.calls();
        assert.equal(calls.length, 1);
        const want = `log in as ${sshd.user} to [127.0.0.1]:${sshd.port}`;
        assert.ok(calls[0].argv.includes(`\nTo ${want}.\n`), calls[0].argv);
        assert.equal(lastAudit()?.purpose, want);
        const log = await run(process.execPath, [agentMain(), 'log', '--file', auditFile], {
          env: env(),
        });
        assert.ok(log.stdout.includes(`to ${want}`), log.stdout + log.stderr);
      });
    },
  );

function agentMain(): string {
  return TSAGENTS[0].prefix[0];
}
