// Acceptance (issue 13, "Forwarded connections cannot change the agent"), with
// real OpenSSH: through `ssh -A goober`, `ssh-add -l` works, while `ssh-add -D`,
// `ssh-add FILE` and `ssh-add -x` exit 1 and change nothing on this machine,
// each refusal in the audit log and in `tsagent status` with its hop chain.
// OpenSSH's agent serves all of them (checked too, so the difference is on
// record), and so does tsagent with --allow-forwarded-changes. A key added with
// `tsagent add --local-only` is neither listed nor used for signing there, and
// works on this machine.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditRecord, readAudit } from '../src/agent/audit';
import { AGENTS, AgentSpec, TSAGENT_MAIN } from './fixtures/agent';
import { hopAgent } from './fixtures/hop-agent';
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
let localKey: TestKey;
let lockpass: Askpass;

before(async () => {
  if (skip) return;
  dir = mkTemp();
  key = await makeKey(dir, keyType('ed25519'), { name: 'owner-key', comment: 'owner-key@test' });
  extra = await makeKey(dir, keyType('ecdsa256'), { name: 'hop-key', comment: 'hop-key@test' });
  localKey = await makeKey(dir, keyType('ed25519'), { name: 'git-key', comment: 'git-key@test' });
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
    const a = hopAgent(agent, () => hops, { auditLog: isTsagent });
    const local = a.sshAdd;
    /** `ssh -A goober CMD…`: the command runs with the forwarded agent. */
    const onGoober = (cmd: string[]) => hops.ssh(a.sock, ['-A', 'goober', ...cmd]).done;
    const listedHere = async () => (await local(['-l'])).stdout;

    /** Audit records of refused changes. */
    const refusals = (): AuditRecord[] =>
      isTsagent ? readAudit(a.auditFile).filter((r) => r.request) : [];

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

    it('tsagent status counts the refusals and names the hop chain of each', async () => {
      if (!isTsagent) return;
      const env = a.env();
      const j = await run(process.execPath, [TSAGENT_MAIN, 'status', '--json'], { env });
      assert.equal(j.code, 0, j.stderr);
      const st = JSON.parse(j.stdout) as {
        refusedChanges: { count: number; recent: { request: string; hops: string[] }[] };
      };
      const hop = [os.hostname(), 'goober'];
      assert.equal(st.refusedChanges.count, 3);
      assert.deepEqual(
        st.refusedChanges.recent.map((r) => [r.request, r.hops]),
        [
          ['REMOVE_ALL_IDENTITIES', hop],
          ['ADD_IDENTITY', hop],
          ['LOCK', hop],
        ],
      );
      const t = await run(process.execPath, [TSAGENT_MAIN, 'status'], { env });
      assert.match(t.stdout, /^refused from forwarded connections: 3$/m);
      assert.match(t.stdout, new RegExp(`LOCK from ${os.hostname()} \u2192 goober$`, 'm'));
    });
  });
}

/** ssh-add -D, ssh-add FILE and ssh-add -x on goober, served: OpenSSH's agent's behaviour. */
function changesServed(agent: AgentSpec, args: string[]) {
  const a = hopAgent(agent, () => hops, { args });
  const local = a.sshAdd;
  const onGoober = (cmd: string[]) => hops.ssh(a.sock, ['-A', 'goober', ...cmd]).done;

  it('ssh-add -D on goober removes every key', async () => {
    assert.equal((await local([key.priv])).code, 0);
    const r = await onGoober(['ssh-add', '-D']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await local(['-l'])).code, 1);
  });

  it('ssh-add FILE on goober adds the key', async () => {
    assert.equal((await local([key.priv])).code, 0);
    const r = await onGoober(['ssh-add', extra.priv]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await local(['-l'])).stdout, `${key.listLine}\n${extra.listLine}\n`);
    assert.equal((await local(['-d', extra.priv])).code, 0);
  });

  it('ssh-add -x on goober locks the agent', async () => {
    const env = Object.entries(lockpass.env()).map(([k, v]) => `${k}=${v}`);
    const r = await onGoober(['env', ...env, 'ssh-add', '-x']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await local(['-l'])).code, 1);
    const u = await local(['-X'], lockpass.env());
    assert.equal(u.code, 0, u.stderr);
    assert.equal((await local(['-l'])).stdout, `${key.listLine}\n`);
  });
}

for (const agent of AGENTS.filter((x) => x.kind === 'tsagent')) {
  describe(
    `changes through ssh -A goober with ${agent.name} --allow-forwarded-changes`,
    { skip },
    () => changesServed(agent, ['--allow-forwarded-changes']),
  );
}

for (const agent of AGENTS) {
  describe(`tsagent add --local-only, then ssh -A goober, with ${agent.name}`, { skip }, () => {
    const isTsagent = agent.kind === 'tsagent';
    const a = hopAgent(agent, () => hops);
    const env = () => a.env();
    const local = a.sshAdd;
    const onGoober = (cmd: string[]) => hops.ssh(a.sock, ['-A', 'goober', ...cmd]).done;
    /**
     * `ssh-keygen -Y sign` with the public key only (a copy without its private
     * key beside it): only the agent can sign.
     */
    const signCmd = (file: string, k: TestKey = localKey) => {
      const pub = path.join(a.dir, 'pub-only', path.basename(k.pub));
      fs.mkdirSync(path.dirname(pub), { recursive: true });
      fs.copyFileSync(k.pub, pub);
      return [SSH_KEYGEN, '-Y', 'sign', '-n', 'git', '-f', pub, file];
    };

    it(`tsagent add --local-only ${isTsagent ? 'adds the key' : 'is refused (unknown constraint)'}`, async () => {
      assert.equal((await local([key.priv])).code, 0);
      const r = await run(process.execPath, [TSAGENT_MAIN, 'add', '--local-only', localKey.priv], {
        env: env(),
      });
      assert.equal(r.code, isTsagent ? 0 : 1, r.stdout + r.stderr);
      const want = isTsagent ? `${key.listLine}\n${localKey.listLine}\n` : `${key.listLine}\n`;
      assert.equal((await local(['-l'])).stdout, want);
    });

    it('it signs on this machine', async (t) => {
      if (!isTsagent) return t.skip('not added');
      const file = path.join(a.dir, 'here.txt');
      fs.writeFileSync(file, 'signed here\n');
      const [cmd, ...args] = signCmd(file);
      const r = await run(cmd, args, { env: env() });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(fs.existsSync(`${file}.sig`));
    });

    it('on goober it is not listed, and cannot sign', async (t) => {
      if (!isTsagent) return t.skip('not added');
      const l = await onGoober(['ssh-add', '-l']);
      assert.equal(l.code, 0, l.stderr);
      assert.equal(l.stdout, `${key.listLine}\n`);
      const file = path.join(a.dir, 'there.txt');
      fs.writeFileSync(file, 'signed on goober\n');
      const s = await onGoober(signCmd(file));
      assert.notEqual(s.code, 0, s.stdout + s.stderr);
      assert.ok(!fs.existsSync(`${file}.sig`));
      // The other key signs there (so it is the local-only key that cannot).
      const o = await onGoober(signCmd(file, key));
      assert.equal(o.code, 0, o.stderr);
      assert.ok(fs.existsSync(`${file}.sig`));
    });
  });
}
