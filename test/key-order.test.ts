// The right key first (issue 13), with the real ssh and sshd: seven keys in the
// agent, a server with MaxAuthTries 2 that accepts only the seventh. With
// OpenSSH's agent every login is cut off ("Too many authentication failures");
// tsagent rotates its order after each refused connection, logs in within four
// attempts, and from then on offers exactly one key.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AGENTS, RunningAgent, TSAGENT_MAIN, startAgent } from './fixtures/agent';
import { fingerprint } from '../src/ssh/fingerprint';
import type { TestKey } from './fixtures/keys';
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
import { Sshd, sshLogin } from './fixtures/sshd';
import { offeredKeys, pickyServer } from './fixtures/picky-server';

const offered = offeredKeys;

for (const spec of AGENTS)
  describe(
    `${spec.name}: seven keys, MaxAuthTries 2, only the seventh accepted`,
    { skip: skipUnless([SSH, SSHD, SSH_ADD, SSH_KEYGEN]) },
    () => {
      let dir: string;
      let keys: TestKey[];
      let sshd: Sshd;
      let agent: RunningAgent;

      before(async () => {
        dir = mkTemp();
        ({ keys, sshd } = await pickyServer(dir));
        agent = await startAgent(spec);
        const add = await run(
          SSH_ADD,
          keys.map((k) => k.priv),
          {
            env: baseEnv({ SSH_AUTH_SOCK: agent.sock }),
          },
        );
        assert.equal(add.code, 0, add.stderr);
      });
      after(async () => {
        await agent?.stop();
        await sshd?.stop();
        rmTemp(dir);
      });

      test(
        spec.kind === 'openssh'
          ? 'every login is cut off after two keys'
          : 'a login succeeds within four attempts, and later logins offer one key',
        async () => {
          const results: { ok: boolean; offers: number }[] = [];
          for (let i = 0; i < 6; i++) {
            const r = await sshLogin(sshd, agent.sock, ['true']);
            results.push({ ok: r.code === 0, offers: offered(r.stderr) });
            if (r.code !== 0) assert.match(r.stderr, /Too many authentication failures/);
          }
          if (spec.kind === 'openssh') {
            assert.ok(
              results.every((r) => !r.ok && r.offers === 2),
              JSON.stringify(results),
            );
            return;
          }
          const first = results.findIndex((r) => r.ok);
          assert.ok(first >= 0 && first < 4, `first success at attempt ${first + 1}`);
          for (const r of results.slice(first + 1)) assert.deepEqual(r, { ok: true, offers: 1 });
          // The learned key is listed first on a connection bound to that host only:
          // ssh-add -l (no bind) keeps the agent's order.
          const l = await run(SSH_ADD, ['-l'], { env: baseEnv({ SSH_AUTH_SOCK: agent.sock }) });
          assert.equal(l.stdout.split('\n')[0], keys[0].listLine);
          // tsagent hosts names what was learned; forgetting it starts the host afresh.
          const env = baseEnv({ SSH_AUTH_SOCK: agent.sock });
          const hostFp = fingerprint(Buffer.from(sshd.hostKey.split(' ')[1], 'base64'));
          const hosts = await run(process.execPath, [TSAGENT_MAIN, 'hosts'], { env });
          assert.equal(hosts.stdout, `${hostFp} (${hostFp}): accepts ${keys[6].fingerprint}\n`);
          const status = await run(process.execPath, [TSAGENT_MAIN, 'status'], { env });
          assert.match(status.stdout, /\nhosts: {2}1 learned\n/);
          const forget = await run(process.execPath, [TSAGENT_MAIN, 'hosts', 'forget', hostFp], {
            env,
          });
          assert.equal(forget.code, 0, forget.stderr);
          const again = await sshLogin(sshd, agent.sock, ['true']);
          assert.notEqual(again.code, 0, 'forgotten: the agent order again, cut off after two');
          assert.equal(offered(again.stderr), 2);
          const none = await run(process.execPath, [TSAGENT_MAIN, 'hosts', 'forget', 'nosuch'], {
            env,
          });
          assert.equal(none.code, 1);
        },
      );
    },
  );
