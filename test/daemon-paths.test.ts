// The agent's paths: one resolver for the vault (the agent and `tsagent vault`
// agree on it, whatever the environment says) and one for the audit log.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { daemonConfig, AgentSettings } from '../src/daemon/config';
import { auditLogPath } from '../src/daemon/paths';
import { resolveVaultPath } from '../src/vault/paths';
import { mkTemp, rmTemp } from './fixtures/run';

const settings: AgentSettings = {
  fingerprintHash: 'sha256',
  newAgent: false,
  confirmForwarded: false,
  strict: false,
};
const paths = { sock: '/x/agent.sock', removeDir: false };

describe('agent paths', () => {
  it('the agent and tsagent vault resolve the same vault, also with TSAGENT_VAULT=""', () => {
    const envs: NodeJS.ProcessEnv[] = [
      { TSAGENT_VAULT: '', XDG_DATA_HOME: '/data', HOME: '/home/u' },
      { TSAGENT_VAULT: '/env/vault', XDG_DATA_HOME: '/data' },
      { XDG_DATA_HOME: '/data' },
    ];
    for (const env of envs) {
      assert.equal(daemonConfig(settings, paths, env).vault, resolveVaultPath(undefined, env));
      assert.equal(
        daemonConfig({ ...settings, vault: '' }, paths, env).vault,
        resolveVaultPath('', env),
      );
    }
    assert.equal(
      daemonConfig(settings, paths, envs[0]).vault,
      path.join('/data', 'tsagent', 'vault'),
    );
    assert.equal(
      daemonConfig({ ...settings, vault: 'rel/v' }, paths, envs[1]).vault,
      path.resolve('rel/v'),
    );
  });

  it('the audit log is the one tsagent log reads: beside the vault, once its directory exists', () => {
    const dir = mkTemp();
    try {
      const env = { TSAGENT_VAULT: path.join(dir, 'vault') };
      assert.equal(auditLogPath(undefined, env), path.join(dir, 'audit.log'));
      assert.equal(daemonConfig(settings, paths, env).auditLog, auditLogPath(undefined, env));
      const missing = { TSAGENT_VAULT: path.join(dir, 'nowhere', 'vault') };
      assert.equal(daemonConfig(settings, paths, missing).auditLog, undefined);
      const explicit = { ...missing, TSAGENT_AUDIT_LOG: path.join(dir, 'a.log') };
      assert.equal(daemonConfig(settings, paths, explicit).auditLog, path.join(dir, 'a.log'));
      assert.equal(auditLogPath(undefined, explicit), path.join(dir, 'a.log'));
      assert.ok(fs.existsSync(dir));
    } finally {
      rmTemp(dir);
    }
  });
});
