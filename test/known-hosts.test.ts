// known_hosts lookups (src/agent/known-hosts.ts) as OpenSSH's hostfile.c does
// them: patterns with only `*` and `?` special, `[host]:port` names taken
// literally, host names without regard to ASCII case (match_hostname).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { keysForHost, nameForKey, parseKnownHosts } from '../src/agent/known-hosts';

const blob = (tag: string) => {
  const b = Buffer.from(`key ${tag}`);
  return { b, b64: b.toString('base64') };
};
const A = blob('a');
const B = blob('b');
const found = (text: string, name: string, port?: number) =>
  keysForHost(parseKnownHosts(text), name, port).map((k) => k.keyBlob.toString());

describe('known_hosts lookups', () => {
  test('[goober]:2222 names goober on port 2222, and never g:2222', () => {
    const text = `[goober]:2222 ssh-ed25519 ${A.b64}\n`;
    assert.deepEqual(found(text, 'goober', 2222), ['key a']);
    assert.deepEqual(found(text, 'g', 2222), []);
    assert.deepEqual(found(text, 'o', 2222), []);
    assert.deepEqual(found(text, 'goober'), []);
  });

  test('a stray [ in one entry does not break the lookups of the others', () => {
    const text = `[broken ssh-ed25519 ${B.b64}\ngoober ssh-ed25519 ${A.b64}\n`;
    assert.doesNotThrow(() => found(text, 'goober'));
    assert.deepEqual(found(text, 'goober'), ['key a']);
    assert.deepEqual(found(text, '[broken'), ['key b']);
  });

  test('host names match without regard to case, in names and patterns', () => {
    const text = `Goober.Example ssh-ed25519 ${A.b64}\n*.EXAMPLE.com ssh-ed25519 ${B.b64}\n`;
    assert.deepEqual(found(text, 'goober.example'), ['key a']);
    assert.deepEqual(found(text, 'GOOBER.example'), ['key a']);
    assert.deepEqual(found(text, 'Boomer.Example.COM'), ['key b']);
  });

  test('hashed entries match the lowercased name (ssh-add lowercases -h hosts)', () => {
    const salt = crypto.randomBytes(20);
    const hash = crypto.createHmac('sha1', salt).update('goober').digest();
    const text = `|1|${salt.toString('base64')}|${hash.toString('base64')} ssh-ed25519 ${A.b64}\n`;
    assert.deepEqual(found(text, 'goober'), ['key a']);
    assert.deepEqual(found(text, 'GOOBER'), ['key a']);
    assert.deepEqual(found(text, 'boomer'), []);
  });

  test('wildcards, negation, CA and revoked markers', () => {
    const text = [
      `*.example.com,!bad.example.com ssh-ed25519 ${A.b64}`,
      `@cert-authority goo?er ssh-ed25519 ${B.b64}`,
      `@revoked goober ssh-ed25519 ${A.b64}`,
    ].join('\n');
    const entries = parseKnownHosts(text);
    assert.deepEqual(found(text, 'x.example.com'), ['key a']);
    assert.deepEqual(found(text, 'bad.example.com'), []);
    assert.deepEqual(keysForHost(entries, 'goober'), [{ keyBlob: B.b, isCA: true }]);
    assert.equal(nameForKey(entries, A.b), '*.example.com');
  });
});
