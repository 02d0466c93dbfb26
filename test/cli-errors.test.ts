// Wrong invocations and broken set-ups: each gets a message that names the
// file, key or flag at fault and says how to fix it, and the documented exit
// status.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alive, mkTemp, rmTemp, sleep } from './fixtures/run';

const REPO = path.resolve(__dirname, '..', '..');
const MAIN = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
const PASS = 'cli errors pass';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Row {
  name: string;
  args: string[];
  /** Lines on fd 3 (for --passphrase-fd 3). */
  fd3?: string[];
  env?: Record<string, string | undefined>;
  /** Runs first; gets the world's paths. */
  setup?: () => void;
  /** Runs after, whatever happened. */
  cleanup?: () => void;
  code: number;
  stderr?: RegExp;
  stdout?: RegExp;
}

describe('error messages and exit codes', () => {
  let dir: string;
  let home: string;
  let runtime: string;
  let vaultDir: string;
  let vaultPath: string;
  let agentSock: string;
  let agentPid = 0;
  let baseEnv: NodeJS.ProcessEnv;

  function tsagent(args: string[], fd3?: string[], env: Row['env'] = {}): Promise<Result> {
    const e: NodeJS.ProcessEnv = { ...baseEnv };
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete e[k];
      else e[k] = v;
    }
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN, ...args], {
        env: e,
        stdio: ['ignore', 'pipe', 'pipe', fd3 ? 'pipe' : 'ignore'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      if (fd3) {
        const w = child.stdio[3] as NodeJS.WritableStream;
        w.on('error', () => {});
        w.end(fd3.map((l) => l + '\n').join(''));
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  before(async () => {
    dir = mkTemp('tsagent-errors-');
    home = path.join(dir, 'home');
    runtime = path.join(dir, 'run');
    fs.mkdirSync(home);
    fs.mkdirSync(runtime, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'notakey'), 'hello\n');
    vaultDir = path.join(dir, 'data');
    vaultPath = path.join(vaultDir, 'vault');
    baseEnv = {
      PATH: process.env.PATH,
      HOME: home,
      XDG_RUNTIME_DIR: runtime,
      LANG: 'C',
      LC_ALL: 'C',
    };
    // A vault with one key, and an agent serving it (locked, as it starts).
    let r = await tsagent(
      [
        'vault',
        '--vault',
        vaultPath,
        '--passphrase-fd',
        '3',
        'init',
        '--kdf-memory',
        '1024',
        '--kdf-time',
        '1',
      ],
      [PASS, PASS],
    );
    assert.equal(r.code, 0, r.stderr);
    r = await tsagent(
      [
        'vault',
        '--vault',
        vaultPath,
        '--passphrase-fd',
        '3',
        'generate',
        '-t',
        'ed25519',
        '-C',
        'known-key',
      ],
      [PASS],
    );
    assert.equal(r.code, 0, r.stderr);
    agentSock = path.join(dir, 'agent.sock');
    r = await tsagent(['-s', '-a', agentSock, '--vault', vaultPath]);
    assert.equal(r.code, 0, r.stderr);
    agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(r.stdout)![1]);
  });

  after(async () => {
    if (agentPid) {
      try {
        process.kill(agentPid, 'SIGTERM');
      } catch {
        // gone
      }
      for (let i = 0; i < 50 && alive(agentPid); i++) await sleep(100);
    }
    rmTemp(dir);
  });

  const vault = (...args: string[]) => [
    'vault',
    '--vault',
    '<VAULT>',
    '--passphrase-fd',
    '3',
    ...args,
  ];
  const withAgent = { SSH_AUTH_SOCK: '<SOCK>' };
  const noAgent = { SSH_AUTH_SOCK: '<DIR>/no-agent.sock' };

  const rows: Row[] = [
    // The agent's command line (ssh-agent's messages, then the usage, exit 1 as ssh-agent).
    {
      name: 'unknown flag',
      args: ['-x'],
      code: 1,
      stderr: /^tsagent: unknown option -- x\nusage: tsagent /,
    },
    {
      name: 'unknown long flag',
      args: ['--bogus'],
      code: 1,
      stderr: /^tsagent: unknown option --bogus\nusage: /,
    },
    {
      name: 'missing argument',
      args: ['-a'],
      code: 1,
      stderr: /option requires an argument -- a\nusage: /,
    },
    {
      name: '-c with -s',
      args: ['-c', '-s'],
      code: 1,
      stderr: /^tsagent: -c and -s are exclusive\nusage: /,
    },
    {
      name: 'bad -E',
      args: ['-E', 'sha1'],
      code: 1,
      stderr: /^tsagent: Invalid hash algorithm "sha1"/,
    },
    {
      name: 'bad -E says what is valid',
      args: ['-E', 'sha1'],
      code: 1,
      stderr: /-E.*sha256.*md5/,
    },
    { name: 'bad -t', args: ['-t', 'soon'], code: 1, stderr: /^tsagent: Invalid lifetime/ },
    {
      name: 'bad -t names the flag and the format',
      args: ['-t', 'soon'],
      code: 1,
      stderr: /"soon".*-t.*1h30m/,
    },
    { name: 'bad -O', args: ['-O', 'foo'], code: 1, stderr: /Unknown -O option "foo"/ },
    {
      name: 'bad --max-connections',
      args: ['--max-connections', '0'],
      code: 1,
      stderr: /--max-connections needs a number from 1 to 65536, not "0"/,
    },
    { name: 'bad --lock-after', args: ['--lock-after', '0'], code: 1, stderr: /--lock-after/ },
    {
      name: 'bad --lock-after says the format',
      args: ['--lock-after', 'never'],
      code: 1,
      stderr: /--lock-after.*"never".*30m/,
    },
    {
      name: 'bad --idle-timeout',
      args: ['--idle-timeout', 'x'],
      code: 1,
      stderr: /--idle-timeout/,
    },
    {
      name: 'command with -k',
      args: ['-k', 'true'],
      code: 1,
      stderr: /a command cannot be combined with -c, -s, -k, -d or -D/,
    },
    {
      name: '-k without SSH_AGENT_PID',
      args: ['-k'],
      env: { SSH_AGENT_PID: undefined },
      code: 1,
      stderr: /^tsagent: SSH_AGENT_PID not set, cannot kill agent\n$/,
    },
    {
      name: '-k with a bad SSH_AGENT_PID',
      args: ['-k'],
      env: { SSH_AGENT_PID: 'abc' },
      code: 1,
      stderr: /SSH_AGENT_PID="abc", which is not a good PID/,
    },
    {
      name: 'a live socket at -a',
      args: ['-a', '<SOCK>'],
      code: 1,
      stderr: /cannot bind to path .*agent\.sock: Address already in use/,
    },
    // status, lock, unlock, add, log, init
    {
      name: 'status with no agent',
      args: ['status'],
      env: noAgent,
      code: 2,
      stdout:
        /tsagent is not running \(no agent at .*no-agent\.sock\): start it with eval "\$\(tsagent\)"/,
    },
    {
      name: 'status --json with no agent',
      args: ['status', '--json'],
      env: noAgent,
      code: 2,
      stdout: /^\{"running":false,"socket":".*no-agent\.sock"\}\n$/,
    },
    {
      name: 'status, locked',
      args: ['status'],
      env: withAgent,
      code: 1,
      stdout: /state: {2}locked/,
    },
    {
      name: 'status: unknown flag',
      args: ['status', '--bogus'],
      code: 2,
      stderr: /^tsagent status: unknown option --bogus\nusage: tsagent status \[--json\]\n$/,
    },
    {
      name: 'status --help',
      args: ['status', '--help'],
      code: 0,
      stdout: /usage: tsagent status/,
    },
    {
      name: 'unlock with no agent',
      args: ['unlock'],
      env: noAgent,
      code: 2,
      stderr:
        /^tsagent unlock: no agent at .*no-agent\.sock: start it with eval "\$\(tsagent\)"\n$/,
    },
    {
      name: 'lock with no agent',
      args: ['lock'],
      env: noAgent,
      code: 2,
      stderr: /^tsagent lock: no agent at .*no-agent\.sock/,
    },
    {
      name: 'lock with no agent says how to start one',
      args: ['lock'],
      env: noAgent,
      code: 2,
      stderr: /no agent at .*: start it with eval/,
    },
    {
      name: 'lock: extra argument',
      args: ['lock', 'now'],
      code: 2,
      stderr:
        /^tsagent lock: unexpected argument now\nusage: tsagent lock \[--passphrase-fd N\]\n$/,
    },
    {
      name: 'unlock: wrong passphrase',
      args: ['unlock', '--passphrase-fd', '3'],
      fd3: ['not it'],
      env: withAgent,
      code: 1,
      stderr: /^tsagent unlock: wrong passphrase/,
    },
    {
      name: 'unlock: wrong passphrase names the vault',
      args: ['unlock', '--passphrase-fd', '3'],
      fd3: ['not it'],
      env: withAgent,
      code: 1,
      stderr: /wrong passphrase for vault .*data\/vault/,
    },
    {
      name: 'unlock: no terminal, no askpass',
      args: ['unlock'],
      env: { ...withAgent, DISPLAY: undefined },
      code: 1,
      stderr: /standard input is not a terminal.*--passphrase-fd N.*SSH_ASKPASS/,
    },
    {
      name: 'unlock: bad flag',
      args: ['unlock', '--bogus'],
      code: 2,
      stderr:
        /^tsagent unlock: unexpected argument --bogus\nusage: tsagent unlock \[--passphrase-fd N\]\n$/,
    },
    {
      name: 'add: no file',
      args: ['add'],
      code: 2,
      stderr: /^tsagent add: no key file given\nusage: tsagent add /,
    },
    {
      name: 'add: unreadable file',
      args: ['add', '<DIR>/missing-key'],
      env: withAgent,
      code: 1,
      stderr: /^tsagent add: cannot read .*missing-key: ENOENT/,
    },
    {
      name: 'log: unknown flag',
      args: ['log', '--bogus'],
      code: 2,
      stderr: /^tsagent log: unknown argument "--bogus"\nusage: tsagent log /,
    },
    {
      name: 'log: no log',
      args: ['log', '--file', '<DIR>/none.log'],
      code: 1,
      stderr: /^tsagent log: no audit log at .*none\.log/,
    },
    {
      name: 'init: no shell',
      args: ['init'],
      code: 2,
      stderr: /^tsagent init: name the shell: tsagent init bash/,
    },
    {
      name: 'init: unknown shell',
      args: ['init', 'tcsh'],
      code: 2,
      stderr: /^tsagent init: unsupported shell "tcsh": use bash, zsh or fish .*tsagent -c/,
    },
    {
      name: 'init: an option that starts a new agent each time',
      args: ['init', 'bash', '--new'],
      code: 2,
      stderr: /^tsagent init: --new cannot be used in an rc-file snippet/,
    },
    {
      name: 'init: bad agent option',
      args: ['init', 'zsh', '-E', 'sha1'],
      code: 2,
      stderr: /Invalid hash algorithm "sha1"/,
    },
    // The vault
    {
      name: 'vault: unknown subcommand',
      args: ['vault', 'bogus'],
      code: 2,
      stderr: /unknown command 'bogus'/,
    },
    {
      name: 'vault: unknown flag',
      args: ['vault', 'list', '--bogus'],
      code: 2,
      stderr: /unknown option '--bogus'/,
    },
    {
      name: 'vault: missing vault directory',
      args: ['vault', '--vault', '<DIR>/nothing/vault', 'list'],
      code: 1,
      stderr:
        /^tsagent vault: vault directory .*nothing does not exist: run tsagent vault init \(or pass --vault PATH\)\n$/,
    },
    {
      name: 'vault: missing vault',
      args: ['vault', '--vault', '<DIR>/data/other-vault', 'list'],
      code: 1,
      stderr:
        /^tsagent vault: no vault at .*other-vault: run tsagent vault init to create one \(or pass --vault PATH\)\n$/,
    },
    {
      name: 'vault readable by others',
      args: vault('list'),
      fd3: [PASS],
      setup: () => fs.chmodSync(vaultPath, 0o644),
      cleanup: () => fs.chmodSync(vaultPath, 0o600),
      code: 1,
      stderr:
        /^tsagent vault: vault \/.*data\/vault is readable by group and others \(mode 0644\): run chmod 600 \/.*data\/vault\n$/,
    },
    {
      name: 'vault directory open to others',
      args: vault('list'),
      fd3: [PASS],
      setup: () => fs.chmodSync(vaultDir, 0o775),
      cleanup: () => fs.chmodSync(vaultDir, 0o700),
      code: 1,
      stderr:
        /^tsagent vault: vault directory \/.*data is readable by group and others, writable by group \(mode 0775\): run chmod 700 \/.*data\n$/,
    },
    {
      name: 'vault: wrong passphrase',
      args: vault('list'),
      fd3: ['not it'],
      code: 1,
      stderr: /^tsagent vault: wrong passphrase for vault \/.*data\/vault\n$/,
    },
    {
      name: 'vault: unknown key name',
      args: vault('export-pub', 'no-such-key'),
      fd3: [PASS],
      code: 1,
      stderr:
        /^tsagent vault: no key named "no-such-key" in vault .*: give its comment or fingerprint as "tsagent vault list" shows them\n$/,
    },
    {
      name: 'vault: already exists',
      args: vault('init'),
      fd3: [PASS, PASS],
      code: 1,
      stderr: /^tsagent vault: a vault already exists at .*data\/vault; not overwriting it\n$/,
    },
    {
      name: 'vault: bad --kdf-memory',
      args: vault('passwd', '--kdf-memory', '12'),
      code: 2,
      stderr:
        /^tsagent vault: KDF memoryKiB must be an integer in 1024\.\.4194304, not 12 \(--kdf-memory is in KiB\)\n$/,
    },
    {
      name: 'vault: --kdf-memory not a number',
      args: vault('init', '--kdf-memory', 'lots'),
      code: 2,
      stderr: /--kdf-memory needs an integer >= 1, not "lots"/,
    },
    {
      name: 'vault: bad --lifetime',
      args: vault('set', 'known-key', '--lifetime', 'soon'),
      code: 2,
      stderr: /--lifetime needs seconds \(e\.g\. 3600\), a time like 1h30m, or "none"; not "soon"/,
    },
    {
      name: 'vault: bad key type',
      args: vault('generate', '-t', 'dsa'),
      code: 2,
      stderr:
        /argument 'dsa' is invalid\. Allowed choices are ed25519, ecdsa, rsa, mldsa44-ed25519/,
    },
    {
      name: 'vault: ed25519 with -b',
      args: vault('generate', '-t', 'ed25519', '-b', '4096'),
      code: 2,
      stderr: /ed25519 keys have a fixed size; drop -b 4096/,
    },
    {
      name: 'vault: not a key file',
      args: vault('import', '<DIR>/notakey'),
      code: 1,
      stderr:
        /^tsagent vault: .*notakey: not a private key file \(no OpenSSH, PEM, PKCS#12 or PuTTY key found\)\n$/,
    },
    {
      name: 'vault: missing key file',
      args: vault('import', '<DIR>/missing-key'),
      code: 1,
      stderr: /^tsagent vault: cannot read .*missing-key: ENOENT/,
    },
    {
      name: 'vault: no terminal, no askpass',
      args: ['vault', '--vault', '<VAULT>', 'list'],
      env: { DISPLAY: undefined },
      code: 1,
      stderr:
        /cannot ask for a passphrase: standard input is not a terminal\. Run from a terminal, pass --passphrase-fd N, or set SSH_ASKPASS/,
    },
    {
      name: 'vault: --passphrase-fd not open',
      args: ['vault', '--vault', '<VAULT>', '--passphrase-fd', '9', 'list'],
      code: 1,
      stderr: /--passphrase-fd 9: not an open file descriptor/,
    },
  ];

  for (const row of rows) {
    it(row.name, async () => {
      const fill = (s: string) =>
        s.replace('<VAULT>', vaultPath).replace('<SOCK>', agentSock).replace('<DIR>', dir);
      const env = Object.fromEntries(
        Object.entries(row.env ?? {}).map(([k, v]) => [k, v === undefined ? v : fill(v)]),
      );
      row.setup?.();
      let r: Result;
      try {
        r = await tsagent(row.args.map(fill), row.fd3, env);
      } finally {
        row.cleanup?.();
      }
      const show = `tsagent ${row.args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
      if (row.stderr) assert.match(r.stderr, row.stderr, show);
      if (row.stdout) assert.match(r.stdout, row.stdout, show);
      assert.equal(r.code, row.code, show);
    });
  }
});
