// What the user is told about security keys: the touch notice (as ssh-agent's
// "Confirm user presence for key …", plus what to do) and the confirm prompt
// of a key that needs a touch after it is allowed.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { securityKey } from '../src/agent/device-key';
import type { Entry } from '../src/agent/keyring';
import { touchNotice } from '../src/daemon/devices';
import { KnownHostsCache } from '../src/daemon/known-hosts-cache';
import { confirmPrompt } from '../src/daemon/prompt';
import { fingerprint } from '../src/ssh/fingerprint';
import { readSkPrivateKey } from '../src/ssh/sk-key';
import { WireReader } from '../src/ssh/wire';
import { SK_DUMMY, SK_FIXTURES } from './fixtures/sk';

function deviceKey(file: string, flags?: number) {
  const r = new WireReader(fs.readFileSync(path.join(SK_FIXTURES, `${file}.add.bin`)).subarray(1));
  const sk = readSkPrivateKey(r.text(), r);
  return securityKey(flags === undefined ? sk : { ...sk, flags }, SK_DUMMY);
}

const entry = (key: Entry['key']): Entry => ({
  key,
  comment: Buffer.from('my key'),
  confirm: true,
  confirmForwarded: false,
  destinations: [],
  fromVault: false,
});
const ctx = { id: 1, binds: [], bindAttempted: false, bindAttempts: 0 };
const details = { hosts: [], forwarded: false, verified: false };

describe('security key notices', () => {
  it('the touch notice names the key as ssh-agent does and says what to do', () => {
    for (const [file, type] of [
      ['id_ed25519_sk', 'ED25519-SK'],
      ['id_ecdsa_sk-cert', 'ECDSA-SK'],
    ]) {
      const key = deviceKey(file);
      assert.equal(
        touchNotice(key, 'sha256'),
        `Confirm user presence for key ${type} ${fingerprint(key.publicBlob)}: touch your security key`,
      );
    }
    assert.match(touchNotice(deviceKey('id_ed25519_sk'), 'md5'), / MD5:/);
  });

  it('the confirm prompt of a key that needs a touch says to touch it', () => {
    const hosts = new KnownHostsCache();
    const touch = confirmPrompt(entry(deviceKey('id_ed25519_sk')), ctx, details, 'sha256', hosts);
    assert.match(touch, /^Allow use of key my key\?/);
    assert.match(touch, /\nIf allowed, touch your security key\.$/);
    const noTouch = confirmPrompt(
      entry(deviceKey('id_ed25519_sk', 0)),
      ctx,
      details,
      'sha256',
      hosts,
    );
    assert.ok(!noTouch.includes('touch'));
  });
});
