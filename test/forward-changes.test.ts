// Acceptance (issue 13, "Forwarded connections cannot change the agent"), with
// real OpenSSH: through `ssh -A goober`, `ssh-add -l` works, while `ssh-add -D`,
// `ssh-add FILE` and `ssh-add -x` exit 1 and change nothing on this machine,
// each refusal in the audit log with its hop chain. OpenSSH's agent serves all
// of them (checked too, so the difference is on record).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditRecord, readAudit } from '../src/agent/audit';
import { AGENTS, RunningAgent, startAgent } from './fixtures/agent';
import { Hops, startHops } from './fixtures/hops';
import { Askpass, TestKey, keyBlobText, keyType, makeKey } from './fixtures/keys';
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

const skip = skipUnless([SSH, SSHD, SSH_ADD, SSH_KEYGEN]);

let dir: string;
let hops: Hops;
let key: TestKey;
let extra: TestKey;
let lockpass: Askpass;

before(async () => {
  if (skip) return;
  dir = mkTemp();
  key = await makeKey(dir, keyType('ed25519'), { name: 'owner-key', comment: 'owner-key@test' });
  extra = await makeKey(dir, keyType('ecdsa256'), { name: 'hop-key', comment: 'hop-key@test' });
  lockpass = new Askpass(fs.mkdtempSync(path.join(dir, 'lockpass-')));
  lockpass.answer('hop lock passphrase');
  hops = await startHops(`${keyBlobText(key)} ${key.comment}\n`);
});

after(async () => {
  await hops?.stop();
  rmTemp(dir);
});

for (const agent of AGENTS) {
  describe(`changes through ssh -A goober with ${agent.name}`, { skip }, () => {
    const isTsagent = agent.kind === 'tsagent';
    let a: RunningAgent;
    let adir: string;
    let auditFile: string;

    before(async () => {
      adir = mkTemp();
      auditFile = path.join(adir, 'audit.log');
      a = await startAgent(agent, {
        args: isTsagent ? ['--audit-log', auditFile] : [],
        env: { HOME: hops.home, XDG_DATA_HOME: path.join(adir, 'data') },
      });
    });
    after(async () => {
      await a?.stop();
      rmTemp(adir);
    });

    const local = (args: string[]) =>
      run(SSH_ADD, args, { env: baseEnv({ SSH_AUTH_SOCK: a.sock, HOME: hops.home }) });
    /** `ssh -A goober CMD…`: the command runs with the forwarded agent. */
    const onGoober = (cmd: string[]) => hops.ssh(a.sock, ['-A', 'goober', ...cmd]).done;
    const listedHere = async () => (await local(['-l'])).stdout;

    /** Audit records of refused changes. */
    const refusals = (): AuditRecord[] =>
      isTsagent ? readAudit(auditFile).filter((r) => r.request) : [];

    it('ssh-add -l works on goober', async () => {
      assert.equal((await local([key.priv])).code, 0);
      const r = await onGoober(['ssh-add', '-l']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${key.listLine}\n`);
    });

    it(`ssh-add -D on goober ${isTsagent ? 'exits 1, keys stay' : 'removes every key'}`, async () => {
      const r = await onGoober(['ssh-add', '-D']);
      if (isTsagent) {
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, /Failed to remove all identities/);
        assert.equal(await listedHere(), `${key.listLine}\n`);
      } else {
        assert.equal(r.code, 0, r.stderr);
        assert.equal((await local(['-l'])).code, 1);
        assert.equal((await local([key.priv])).code, 0);
      }
    });

    it(`ssh-add FILE on goober ${isTsagent ? 'exits 1, nothing added' : 'adds the key'}`, async () => {
      const r = await onGoober(['ssh-add', extra.priv]);
      if (isTsagent) {
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.equal(await listedHere(), `${key.listLine}\n`);
      } else {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await listedHere(), `${key.listLine}\n${extra.listLine}\n`);
        assert.equal((await local(['-d', extra.priv])).code, 0);
      }
    });

    it(`ssh-add -x on goober ${isTsagent ? 'exits 1, not locked' : 'locks the agent'}`, async () => {
      const env = Object.entries(lockpass.env()).map(([k, v]) => `${k}=${v}`);
      const r = await onGoober(['env', ...env, 'ssh-add', '-x']);
      if (isTsagent) {
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, /Failed to lock agent/);
        assert.equal(await listedHere(), `${key.listLine}\n`);
      } else {
        assert.equal(r.code, 0, r.stderr);
        assert.equal((await local(['-l'])).code, 1);
        const u = await run(SSH_ADD, ['-X'], {
          env: baseEnv({ SSH_AUTH_SOCK: a.sock, ...lockpass.env() }),
        });
        assert.equal(u.code, 0, u.stderr);
      }
    });

    it('each refusal is in the audit log, with the hop chain it came through', () => {
      if (!isTsagent) return;
      const got = refusals().map((r) => [r.request, r.decision, r.forwarded, r.hops.join(' > ')]);
      const hop = `${os.hostname()} > goober`;
      assert.deepEqual(got, [
        ['REMOVE_ALL_IDENTITIES', 'refused', true, hop],
        ['ADD_IDENTITY', 'refused', true, hop],
        ['LOCK', 'refused', true, hop],
      ]);
      assert.equal(refusals()[1].key, extra.fingerprint);
    });
  });
}
