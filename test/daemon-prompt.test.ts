// The confirm prompt, in process: what a requester controls (key comment, user
// name, its own command line, the hosts it binds) is shown escaped, and a host
// chain reads as checked only when the keyring verified it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Entry, SignDetails } from '../src/agent/keyring';
import type { ConnectionContext } from '../src/agent/server';
import { KnownHostsCache } from '../src/daemon/known-hosts-cache';
import { confirmPrompt } from '../src/daemon/prompt';
import { generateKey } from '../src/vault/sshkey';
import { mkTemp } from './fixtures/run';

const HOSTILE = 'work\nLogin: root@bank\x1b[2J\u202etxt.exe';

describe('confirm prompt', () => {
  let entry: Entry;
  let hostKey: Buffer;
  let unknownKey: Buffer;
  let knownHosts: KnownHostsCache;
  let dir: string;
  before(async () => {
    const k = await generateKey('ed25519', undefined, HOSTILE);
    entry = { key: { publicBlob: k.publicBlob }, comment: Buffer.from(HOSTILE) } as Entry;
    hostKey = (await generateKey('ed25519', undefined, 'h')).publicBlob;
    unknownKey = (await generateKey('ed25519', undefined, 'u')).publicBlob;
    dir = mkTemp();
    const file = path.join(dir, 'known_hosts');
    fs.writeFileSync(file, `goober ssh-ed25519 ${hostKey.toString('base64')}\n`);
    knownHosts = new KnownHostsCache({ files: [file] });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const ctx = (binds: Buffer[], command?: string): ConnectionContext =>
    ({
      id: 1,
      bindAttempted: binds.length > 0,
      binds: binds.map((hostKey, i) => ({
        hostKey,
        sessionId: Buffer.alloc(32, i),
        forwarded: i < binds.length - 1,
      })),
      peer: { pid: 4242, uid: 1000, gid: 1000, command },
    }) as ConnectionContext;
  const details = (extra: Partial<SignDetails>): SignDetails => ({
    hosts: [],
    forwarded: false,
    verified: false,
    ...extra,
  });

  it('escapes the key comment, the user name and the command line; labels the command as self-reported', () => {
    const p = confirmPrompt(
      entry,
      ctx([], 'ssh\rRequested by pid 1 (ssh-add), uid 0.'),
      details({ user: 'root"\nLogin: x' }),
      'sha256',
      knownHosts,
    );
    const lines = p.split('\n');
    assert.equal(lines.length, 4, p);
    assert.equal(lines[0], 'Allow use of key work\\nLogin: root@bank\\x1b[2J\\u{202e}txt.exe?');
    assert.match(lines[1], /^Key fingerprint SHA256:\S+\.$/);
    assert.equal(lines[2], 'Public key authentication request for user "root"\\nLogin: x".');
    assert.equal(
      lines[3],
      'Requested by pid 4242 (self-reported command: ssh\\rRequested by pid 1 (ssh-add), uid 0.), uid 1000.',
    );
    assert.doesNotMatch(p, /[\x00-\x09\x0b-\x1f\x7f\u202e]/u);
  });

  it('shows the host chain as checked only when verified and every host key has a name', () => {
    const host = os.hostname();
    const bound = ctx([hostKey]);
    const verified = confirmPrompt(entry, bound, details({ verified: true }), 'sha256', knownHosts);
    assert.ok(verified.endsWith(`\nLogin: ${host} \u2192 goober.`), verified);
    for (const d of [details({ verified: false }), details({ hosts: ['goober'] })]) {
      const p = confirmPrompt(entry, bound, d, 'sha256', knownHosts);
      assert.ok(p.endsWith(`\nLogin, destination unverified: ${host} \u2192 goober.`), p);
    }
    // Verified, but a host known only by its key's fingerprint: not a checked destination.
    const fwd = ctx([hostKey, unknownKey]);
    const p = confirmPrompt(
      entry,
      fwd,
      details({ verified: true, forwarded: true }),
      'sha256',
      knownHosts,
    );
    assert.match(
      p,
      new RegExp(
        `\\nForwarded, destination unverified: ${host} \u2192 goober \u2192 SHA256:\\S+\\.$`,
      ),
    );
    // A constraint's host name counts as a name.
    const named = confirmPrompt(
      entry,
      fwd,
      details({ verified: true, forwarded: true, hosts: [null, 'boomer'] }),
      'sha256',
      knownHosts,
    );
    assert.ok(named.endsWith(`\nForwarded: ${host} \u2192 goober \u2192 boomer.`), named);
    // Names from a constraint are escaped as well.
    const hostile = confirmPrompt(
      entry,
      fwd,
      details({ verified: true, forwarded: true, hosts: ['a\nLogin: b', 'c\x1b]0;t\x07'] }),
      'sha256',
      knownHosts,
    );
    assert.ok(
      hostile.endsWith(`\nForwarded: ${host} \u2192 a\\nLogin: b \u2192 c\\x1b]0;t\\x07.`),
      hostile,
    );
  });
});
