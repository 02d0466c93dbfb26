// `tsagent status` shows what an agent says about its keys; the comments come
// from whoever added them and must reach the terminal escaped, for tsagent's
// own status and for another agent's plain identity list alike.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AGENTS, TSAGENT_MAIN, startAgent, RunningAgent } from './fixtures/agent';
import { keyType, makeKey, TestKey } from './fixtures/keys';
import { SSH_ADD, baseEnv, mkTemp, rmTemp, run, skipUnless } from './fixtures/run';

const HOSTILE = 'evil\x1b]0;owned\x07\rLogin: root \u202egpj.exe';

for (const agent of AGENTS) {
  describe(`tsagent status against ${agent.name}`, { skip: skipUnless([SSH_ADD]) }, () => {
    let dir: string;
    let a: RunningAgent;
    let key: TestKey;
    before(async () => {
      dir = mkTemp();
      a = await startAgent(agent);
      key = await makeKey(dir, keyType('ed25519'), { comment: HOSTILE });
      const r = await run(SSH_ADD, [key.priv], { env: baseEnv({ SSH_AUTH_SOCK: a.sock }) });
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => {
      await a?.stop();
      rmTemp(dir);
    });

    it('prints key comments escaped: no ESC, CR or bidi override reaches the terminal', async () => {
      const r = await run(process.execPath, [TSAGENT_MAIN, 'status'], {
        env: baseEnv({ SSH_AUTH_SOCK: a.sock }),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /[\x1b\x07\r\u202e]/u, JSON.stringify(r.stdout));
      assert.ok(
        r.stdout.includes(
          `${key.fingerprint} evil\\x1b]0;owned\\x07\\rLogin: root \\u{202e}gpj.exe`,
        ),
        r.stdout,
      );
    });
  });
}
