// OpenSSH's own agent regression scripts, as Debian ships them in openssh-tests
// (/usr/lib/openssh/regress), run against each agent: tsagent in its ssh-agent
// mode (`--new`: always a new agent, as ssh-agent) and OpenSSH's /usr/bin/ssh-agent.
// They are run the way Debian's autopkgtest does (regress/run-tests: a copy of
// the scripts, make t-exec LTESTS=…), with TEST_SSH_SSHAGENT naming the agent and
// SUDO empty (the tests run as root here; agent-getpeereid skips itself then).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AGENTS, TSAGENT_MAIN } from './fixtures/agent';
import { baseEnv, mkTemp, rmTemp, run, skipUnless } from './fixtures/run';

const RUN_TESTS = '/usr/lib/openssh/regress/run-tests';
const SCRIPTS = [
  'agent',
  'agent-getpeereid',
  'agent-timeout',
  'agent-ptrace',
  'agent-subprocess',
  'agent-restrict',
  'agent-pkcs11',
  'sshsig',
  'cert-file',
];
const TIMEOUT = 600_000;

const skip = skipUnless([RUN_TESTS, '/usr/bin/make', '/usr/bin/softhsm2-util']);

for (const agent of AGENTS) {
  describe(`OpenSSH's regression scripts with ${agent.name}`, { skip }, () => {
    for (const script of SCRIPTS) {
      test(`${script}.sh passes`, { timeout: TIMEOUT + 10_000 }, async () => {
        const tmp = mkTemp('tsagent-regress-');
        try {
          let sshAgent = agent.command;
          if (agent.kind === 'tsagent') {
            // ssh-agent's command line, always a new agent: what the scripts expect.
            sshAgent = path.join(tmp, 'tsagent-as-ssh-agent');
            fs.writeFileSync(
              sshAgent,
              `#!/bin/sh\nexec '${process.execPath}' '${TSAGENT_MAIN}' --new "$@"\n`,
              { mode: 0o755 },
            );
          }
          const r = await run(
            RUN_TESTS,
            [tmp, 't-exec', 'SUDO=', `LTESTS=${script}`, `TEST_SSH_SSHAGENT=${sshAgent}`],
            {
              timeout: TIMEOUT,
              env: baseEnv({ USER: process.env.USER, LOGNAME: process.env.LOGNAME }),
            },
          );
          const out = r.stdout + r.stderr;
          assert.equal(r.code, 0, out.slice(-6000));
          // A script's verdict: `ok <name>`, or its own reason to skip (as root: getpeereid, ptrace).
          assert.match(out, /^(ok |skipped)/im, out.slice(-2000));
          assert.doesNotMatch(out, /^FAIL/m, out.slice(-6000));
        } finally {
          rmTemp(tmp);
        }
      });
    }
  });
}
