// The benchmark's keys that OpenSSH's own ssh-add loads into an agent, as a
// user would: security keys (`ssh-keygen -t ed25519-sk|ecdsa-sk -w PROVIDER`
// with OpenSSH's sk-dummy test provider; ssh-add sends the key handle and the
// sk-provider@openssh.com constraint, the agent signs through ssh-sk-helper)
// and PKCS#11 keys in a SoftHSM2 token (`ssh-add -s PROVIDER`, the PIN from a
// stand-in SSH_ASKPASS). Made once per bench run in a private directory; a
// kind whose tools are missing is left out with the reason.

import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KeyKind, SignKey, testKeyFrom } from './test-keys';

export const SK_DUMMY = '/usr/lib/openssh/regress/misc/sk-dummy/sk-dummy.so';
export const SOFTHSM2 = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '123456';
const SO_PIN = '12345678';
const TOKEN_LABEL = 'tsagent-bench';

export type SshAddKind = 'sk-ed25519' | 'sk-ecdsa-p256' | 'pkcs11-rsa-2048' | 'pkcs11-ecdsa-p256';
export const SSH_ADD_KINDS: SshAddKind[] = [
  'sk-ed25519',
  'sk-ecdsa-p256',
  'pkcs11-rsa-2048',
  'pkcs11-ecdsa-p256',
];
export const isSshAddKind = (k: KeyKind): k is SshAddKind =>
  (SSH_ADD_KINDS as KeyKind[]).includes(k);

const SK_TYPES: Partial<Record<SshAddKind, string>> = {
  'sk-ed25519': 'ed25519-sk',
  'sk-ecdsa-p256': 'ecdsa-sk',
};

/** Run a tool; its stderr (or how it failed) as the error when it does not exit 0. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const why = (r.stderr || r.stdout).trim().split('\n').at(-1) ?? '';
    throw new Error(`${path.basename(cmd)} exited ${r.status ?? r.signal}: ${why}`);
  }
  return r.stdout;
}

/** The environment for ssh-add and ssh-keygen: no agent but the one named. */
function toolEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of ['SSH_AGENT_PID', 'SSH_ASKPASS', 'SSH_ASKPASS_REQUIRE', 'SSH_SK_PROVIDER'])
    if (!(k in extra)) delete env[k];
  return env;
}

export class SshAddKeys {
  readonly keys: SignKey[] = [];
  /** Per kind asked for but not made, why (a tool or provider missing, a tool failing). */
  readonly unavailable = new Map<KeyKind, string>();
  /** What the agents' environment needs: SOFTHSM2_CONF, read by the helper that loads the token. */
  readonly agentEnv: NodeJS.ProcessEnv = {};
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-bench-ssh-add-'));
  private readonly skFiles = new Map<SshAddKind, string>();
  private pkcs11Kinds: SshAddKind[] = [];

  constructor(kinds: SshAddKind[]) {
    fs.chmodSync(this.dir, 0o700);
    for (const kind of kinds.filter((k) => SK_TYPES[k])) {
      try {
        this.makeSk(kind);
      } catch (e) {
        this.unavailable.set(kind, (e as Error).message);
      }
    }
    const p11 = kinds.filter((k) => !SK_TYPES[k]);
    if (p11.length === 0) return;
    try {
      this.makeToken(p11);
      this.pkcs11Kinds = p11;
    } catch (e) {
      for (const k of p11) this.unavailable.set(k, (e as Error).message);
    }
  }

  private makeSk(kind: SshAddKind): void {
    if (!fs.existsSync(SK_DUMMY)) throw new Error(`no ${SK_DUMMY} (Debian: openssh-tests)`);
    const file = path.join(this.dir, kind);
    run(
      'ssh-keygen',
      ['-q', '-t', SK_TYPES[kind]!, '-w', SK_DUMMY, '-N', '', '-C', `bench-${kind}`, '-f', file],
      toolEnv({ SSH_SK_PROVIDER: SK_DUMMY }),
    );
    const [keyType, blob] = fs.readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/);
    this.keys.push({ kind, keyType, publicBlob: Buffer.from(blob, 'base64'), signFlags: 0 });
    this.skFiles.set(kind, file);
  }

  /** A SoftHSM2 token of this run's own (SOFTHSM2_CONF), with the keys imported. */
  private makeToken(kinds: SshAddKind[]): void {
    if (!fs.existsSync(SOFTHSM2)) throw new Error(`no ${SOFTHSM2} (Debian: softhsm2)`);
    const tokens = path.join(this.dir, 'tokens');
    fs.mkdirSync(tokens, { mode: 0o700 });
    const conf = path.join(this.dir, 'softhsm2.conf');
    fs.writeFileSync(
      conf,
      `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`,
    );
    const env = toolEnv({ SOFTHSM2_CONF: conf });
    run(
      'softhsm2-util',
      ['--init-token', '--free', '--label', TOKEN_LABEL, '--pin', PIN, '--so-pin', SO_PIN],
      env,
    );
    kinds.forEach((kind, i) => {
      const rsa = kind === 'pkcs11-rsa-2048';
      const { privateKey } = rsa
        ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
        : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const pem = path.join(this.dir, `${kind}.pem`);
      fs.writeFileSync(pem, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
      const id = (i + 1).toString(16).padStart(2, '0');
      run(
        'softhsm2-util',
        ['--import', pem, '--token', TOKEN_LABEL, '--label', kind, '--id', id, '--pin', PIN],
        env,
      );
      fs.rmSync(pem);
      // The token's public key is this one: the blob ssh-add -L shows.
      const { keyType, publicBlob, signFlags } = testKeyFrom(
        rsa ? 'rsa-2048' : 'ecdsa-p256',
        privateKey,
      );
      this.keys.push({ kind, keyType, publicBlob, signFlags });
    });
    fs.writeFileSync(path.join(this.dir, 'askpass'), `#!/bin/sh\necho ${PIN}\n`, {
      mode: 0o700,
    });
    this.agentEnv.SOFTHSM2_CONF = conf;
  }

  /**
   * `ssh-add KEYFILE` (under SSH_SK_PROVIDER) for each security key and
   * `ssh-add -s PROVIDER` for the token, against the agent at `sock`. Returns,
   * per kind whose ssh-add failed, its message (usually "agent refused operation").
   */
  add(sock: string): Map<KeyKind, string> {
    const failed = new Map<KeyKind, string>();
    for (const [kind, file] of this.skFiles) {
      try {
        run('ssh-add', [file], toolEnv({ SSH_AUTH_SOCK: sock, SSH_SK_PROVIDER: SK_DUMMY }));
      } catch (e) {
        failed.set(kind, (e as Error).message);
      }
    }
    if (this.pkcs11Kinds.length) {
      const env = toolEnv({
        SSH_AUTH_SOCK: sock,
        SSH_ASKPASS: path.join(this.dir, 'askpass'),
        SSH_ASKPASS_REQUIRE: 'force',
        ...this.agentEnv,
      });
      try {
        run('ssh-add', ['-s', SOFTHSM2], env);
      } catch (e) {
        for (const k of this.pkcs11Kinds) failed.set(k, (e as Error).message);
      }
    }
    return failed;
  }

  close(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
