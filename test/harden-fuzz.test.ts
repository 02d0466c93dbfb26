// A short fuzz run (test/fuzz/): mutated and random messages from a corpus of
// every message type and constraint, over 16 connections; afterwards the agent
// is alive, answers, signs correctly with the keys added first, has lost none
// and gained none, and its memory has not run away. `npm run fuzz` is the long run.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startTsagent } from './fuzz/agent';
import { fuzzAgent, formatReport } from './fuzz/fuzzer';

const COUNT = Number(process.env.TSAGENT_FUZZ_COUNT ?? 20_000);
const SECONDS = Number(process.env.TSAGENT_FUZZ_SECONDS ?? 15);

describe('fuzzing tsagent', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  it(
    `survives ${COUNT} messages (at most ${SECONDS} s) and keeps its keys`,
    { timeout: 120_000 },
    async (t) => {
      const agent = await startTsagent({ debug: true });
      try {
        const seed = Number(process.env.TSAGENT_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
        const report = await fuzzAgent({
          sock: agent.sock,
          pid: agent.pid,
          ownerLocks: () => agent.output().stderr.split('keys dropped').length - 1,
          count: COUNT,
          seconds: SECONDS,
          concurrency: 16,
          seed,
        });
        const summary = formatReport(report);
        for (const line of summary.split('\n')) t.diagnostic(line);
        const internal = agent
          .output()
          .stderr.split('\n')
          .filter((l) => /internal error/.test(l));
        assert.deepEqual(
          report.problems,
          [],
          `${summary}\n(re-run with TSAGENT_FUZZ_SEED=${seed})`,
        );
        assert.deepEqual(internal.slice(0, 5), [], 'internal errors in the agent log');
        // Something was really exercised: valid signatures, adds, closes, malformed locks.
        assert.ok(report.messages > 500, `only ${report.messages} messages`);
        assert.ok(report.signaturesVerified > 0, 'no signature was verified during the run');
        assert.ok((report.replies.success ?? 0) > 0, 'no request succeeded');
        assert.ok(report.final.signedOk === 14, `baseline signatures: ${report.final.signedOk}`);
        assert.ok(agent.process.exitCode === null, 'agent exited');
      } finally {
        await agent.stop();
      }
    },
  );
});
