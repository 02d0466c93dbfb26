// The peer check (SO_PEERCRED): with the agent running as a test user, a third
// uid is refused even when the socket's mode would let it in; the owner and
// root are served, as with OpenSSH's agent. Needs root (to create the users
// and run the agent as one); skipped otherwise, except under CI.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  OWNER,
  STRANGER,
  Tsagent,
  User,
  identitiesRequest,
  identitiesRequestAs,
  startTsagent,
  testUser,
  usersSkip,
} from './fuzz/agent';
import { waitFor } from './fixtures/run';

const skip = usersSkip();
const IDENTITIES_ANSWER = 12;

describe('peer check: only the owner and root are served', { skip }, () => {
  let owner: User;
  let stranger: User;
  let agent: Tsagent;

  before(async () => {
    const o = testUser(OWNER);
    const s = testUser(STRANGER) ?? testUser('nobody');
    assert.ok(o, `cannot create the test user ${OWNER} (useradd -M -r ${OWNER})`);
    assert.ok(s, `cannot create a second test user ${STRANGER}`);
    [owner, stranger] = [o, s];
    assert.notEqual(owner.uid, stranger.uid);
    agent = await startTsagent({ debug: true, user: owner });
    // Let anyone reach the socket: the peer check alone must keep the stranger out.
    fs.chmodSync(agent.dir, 0o711);
    fs.chmodSync(agent.sock, 0o777);
  });
  after(async () => {
    await agent?.stop();
  });

  it('the agent runs as the owner', () => {
    const status = fs.readFileSync(`/proc/${agent.pid}/status`, 'utf8');
    const uids = /^Uid:\s+(\d+)/m.exec(status)![1];
    assert.equal(Number(uids), owner.uid);
  });

  it('a third uid is refused: connection closed without a reply, refusal logged', async () => {
    const r = await identitiesRequestAs(stranger, agent.sock);
    assert.match(r, /^closed/, `the stranger got ${r}`);
    await waitFor(
      'the refusal in the debug log',
      () => agent.output().stderr.includes(`refusing connection from uid ${stranger.uid}`),
      10_000,
    );
  });

  it('the owner is served', async () => {
    const r = await identitiesRequestAs(owner, agent.sock);
    assert.match(r, /^reply:0c/, `the owner got ${r}`);
    const opened = new RegExp(`opened by pid \\d+ uid ${owner.uid}\\b`);
    await waitFor('the owner in the debug log', () => opened.test(agent.output().stderr), 10_000);
  });

  it('root is served', async () => {
    const { reply } = await identitiesRequest(agent.sock);
    assert.ok(Buffer.isBuffer(reply), `root got ${String(reply)}`);
    assert.equal(reply[0], IDENTITIES_ANSWER);
  });

  it('refusing the stranger did not disturb the agent: it still serves its owner', async () => {
    for (let i = 0; i < 3; i++)
      assert.match(await identitiesRequestAs(stranger, agent.sock), /^closed/);
    assert.match(await identitiesRequestAs(owner, agent.sock), /^reply:0c/);
    assert.equal(agent.process.exitCode, null);
  });
});
