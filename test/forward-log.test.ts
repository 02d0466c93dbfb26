// `tsagent log`: reading the audit log the agent writes (src/agent/audit.ts),
// as lines or JSON, from its default place, and following it across rotations.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog, AuditRecord } from '../src/agent/audit';
import { REPO } from './fixtures/agent';
import { baseEnv, mkTemp, rmTemp, run, waitFor } from './fixtures/run';

const LOG_MODULE = path.join(REPO, 'dist', 'src', 'cli', 'log.js');
const RUN_LOG = `require(${JSON.stringify(LOG_MODULE)}).runLog(process.argv.slice(1)).then((c) => process.exit(c))`;

/** `tsagent log ARGS` (through runLog: main.ts may not route `log` yet). */
const tsagentLog = (args: string[], env: Record<string, string | undefined> = {}) =>
  run(process.execPath, ['-e', RUN_LOG, '--', ...args], { env: baseEnv(env), timeout: 15_000 });

function record(i: number, extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time: `2030-01-01T00:00:${String(i % 60).padStart(2, '0')}.000Z`,
    key: `SHA256:key${i}`,
    comment: `comment-${i}`,
    requester: { pid: 1000 + i, uid: 0, command: `ssh -A goober ssh boomer #${i}` },
    hops: ['sparrow', 'goober', 'boomer'],
    forwarded: true,
    user: 'root',
    decision: 'allowed',
    ...extra,
  };
}

let dir: string;
before(() => {
  dir = mkTemp();
});
after(() => rmTemp(dir));

describe('tsagent log', () => {
  it('prints one line per record: time, decision, key, requester, hops, user, reason', async () => {
    const file = path.join(dir, 'lines.log');
    const audit = new AuditLog(file);
    audit.append(record(1));
    audit.append(
      record(2, {
        decision: 'refused',
        reason: 'destination: not permitted for this destination',
        hops: [],
        forwarded: false,
        user: undefined,
      }),
    );
    audit.append(record(3, { hops: ['sparrow', 'goober'], forwarded: false, requester: {} }));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const r = await tsagentLog(['--file', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        '2030-01-01T00:00:01.000Z allowed SHA256:key1 (comment-1) by pid 1001 uid 0 [ssh -A goober ssh boomer #1] forwarded sparrow \u2192 goober \u2192 boomer as root',
        '2030-01-01T00:00:02.000Z refused SHA256:key2 (comment-2) by pid 1002 uid 0 [ssh -A goober ssh boomer #2] local reason: destination: not permitted for this destination',
        '2030-01-01T00:00:03.000Z allowed SHA256:key3 (comment-3) by unknown process login sparrow \u2192 goober as root',
        '',
      ].join('\n'),
    );
    const j = await tsagentLog(['--json', `--file=${file}`]);
    assert.equal(j.code, 0, j.stderr);
    assert.equal(j.stdout, fs.readFileSync(file, 'utf8'));
  });

  it('never prints control characters from a record raw', async () => {
    const file = path.join(dir, 'hostile.log');
    new AuditLog(file).append(
      record(4, { comment: 'evil\x1b]0;owned\x07', hops: ['a\nb'], reason: 'x\ry' }),
    );
    const r = await tsagentLog(['--file', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout.slice(0, -1), /[\x00-\x1f\x7f]/);
    assert.ok(r.stdout.includes('(evil\\x1b]0;owned\\x07)'), r.stdout);
    // A newline is shown as escapeText writes it (src/ssh/escape.ts): a visible \n.
    assert.ok(r.stdout.includes('a\\nb'), r.stdout);
  });

  it('escapes bidi and other format characters too, and backslashes so no escape is forged', async () => {
    const file = path.join(dir, 'bidi.log');
    new AuditLog(file).append(
      record(8, { comment: 'txt.\u202egpj.exe', user: 'zero\u200bwidth', reason: 'back\\x1b' }),
    );
    const r = await tsagentLog(['--file', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /[\u202e\u200b]/u);
    assert.ok(r.stdout.includes('(txt.\\u{202e}gpj.exe)'), r.stdout);
    assert.ok(r.stdout.includes('as zero\\u{200b}width'), r.stdout);
    assert.ok(r.stdout.includes('reason: back\\\\x1b'), r.stdout);
  });

  it('reads the rotated file first; skips torn lines', async () => {
    const file = path.join(dir, 'rotated.log');
    fs.writeFileSync(file + '.1', JSON.stringify(record(5)) + '\n{"time":"torn\n');
    fs.writeFileSync(file, JSON.stringify(record(6)) + '\n' + JSON.stringify(record(7)));
    const r = await tsagentLog(['--file', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout.split('\n').map((l) => l.split(' ')[2]),
      ['SHA256:key5', 'SHA256:key6', 'SHA256:key7', undefined],
    );
  });

  it('finds the log where the agent puts it: $TSAGENT_AUDIT_LOG, $XDG_DATA_HOME, ~/.local/share', async () => {
    const home = path.join(dir, 'home');
    const xdg = path.join(dir, 'xdg');
    const places = {
      env: path.join(dir, 'env.log'),
      xdg: path.join(xdg, 'tsagent', 'audit.log'),
      home: path.join(home, '.local', 'share', 'tsagent', 'audit.log'),
    };
    for (const [i, f] of Object.values(places).entries()) {
      fs.mkdirSync(path.dirname(f), { recursive: true });
      new AuditLog(f).append(record(10 + i));
    }
    const key = async (env: Record<string, string | undefined>) => {
      const r = await tsagentLog(['--json'], { HOME: home, ...env });
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as AuditRecord).key;
    };
    assert.equal(await key({ TSAGENT_AUDIT_LOG: places.env, XDG_DATA_HOME: xdg }), 'SHA256:key10');
    assert.equal(await key({ XDG_DATA_HOME: xdg }), 'SHA256:key11');
    assert.equal(await key({}), 'SHA256:key12');
    // A relative XDG_DATA_HOME is ignored, as the XDG spec (and the agent) say.
    assert.equal(await key({ XDG_DATA_HOME: 'relative/dir' }), 'SHA256:key12');
  });

  it('without a log: exit 1 and say where it looked; bad arguments: exit 2', async () => {
    const missing = path.join(dir, 'nothing-here.log');
    const r = await tsagentLog(['--file', missing]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `tsagent log: no audit log at ${missing}\n`);
    const bad = await tsagentLog(['--frobnicate']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown argument "--frobnicate"\nusage: tsagent log/);
    const noPath = await tsagentLog(['--file']);
    assert.equal(noPath.code, 2);
  });

  it('the agent rotates its log at the size limit in bytes, multi-byte text included', () => {
    const file = path.join(dir, 'bytes.log');
    const limit = 2000;
    const audit = new AuditLog(file, limit);
    for (let i = 0; i < 12; i++) {
      audit.append(record(i, { comment: '\u20ac'.repeat(300) }));
      assert.ok(fs.statSync(file).size <= limit, `${fs.statSync(file).size} > ${limit}`);
    }
    assert.ok(fs.statSync(file + '.1').size <= limit);
    assert.equal(fs.statSync(file + '.1').mode & 0o777, 0o600);
  });

  it('--follow prints new records, across rotations, until SIGINT', async () => {
    const file = path.join(dir, 'follow.log');
    // A small limit: the agent's log rotates every few records.
    const audit = new AuditLog(file, 1500);
    audit.append(record(20));
    const child = spawn(
      process.execPath,
      ['-e', RUN_LOG, '--', '--follow', '--json', '--file', file],
      {
        env: baseEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const keysSeen = () =>
        out
          .split('\n')
          .filter((l) => l)
          .map((l) => (JSON.parse(l) as AuditRecord).key);
      await waitFor('the existing record', () => keysSeen().length === 1, 15_000, 20);
      const written: string[] = ['SHA256:key20'];
      for (let i = 21; i < 41; i++) {
        audit.append(record(i));
        written.push(`SHA256:key${i}`);
        // Let the reader see some of them one at a time, some in bursts.
        if (i % 4 === 0)
          await waitFor(`record ${i}`, () => keysSeen().length === written.length, 15_000, 20);
      }
      assert.ok(fs.existsSync(file + '.1'), 'the log rotated');
      await waitFor('every record', () => keysSeen().length >= written.length, 15_000, 20);
      assert.deepEqual(keysSeen(), written);
      child.kill('SIGINT');
      assert.equal(await exited, 0, err);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
