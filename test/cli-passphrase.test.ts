// The terminal passphrase reader, in process with a fake terminal: what it
// returns, and that it overwrites every chunk the terminal handed it.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { PassphraseReader } from '../src/cli/passphrase';

/** Just enough of a tty.ReadStream for fromTty(). */
function fakeTerminal() {
  const stdin = Object.assign(new EventEmitter(), {
    isTTY: true,
    isRaw: false,
    setRawMode(raw: boolean) {
      stdin.isRaw = raw;
      return stdin;
    },
    resume: () => stdin,
    pause: () => stdin,
  });
  let written = '';
  const stderr = { isTTY: true, write: (s: string) => ((written += s), true) };
  return { stdin, stderr, written: () => written };
}

describe('passphrase reader on a terminal', () => {
  it('overwrites every chunk it read, the one holding Enter too', async () => {
    const t = fakeTerminal();
    const reader = new PassphraseReader({
      env: {},
      stdin: t.stdin as unknown as NodeJS.ReadStream,
      stderr: t.stderr as unknown as NodeJS.WriteStream,
    });
    assert.equal(reader.source, 'tty');
    const asked = reader.ask('Enter passphrase: ');
    const first = Buffer.from('corr\x7fr');
    const last = Buffer.from('ect horse\r');
    t.stdin.emit('data', first);
    t.stdin.emit('data', last);
    const pass = await asked;
    assert.equal(pass.toString(), 'correct horse');
    assert.ok(
      first.every((b) => b === 0),
      'a chunk before Enter was left',
    );
    assert.ok(
      last.every((b) => b === 0),
      'the chunk holding Enter was left',
    );
    assert.equal(t.stdin.isRaw, false, 'raw mode not restored');
    assert.equal(t.written(), 'Enter passphrase: \n');
  });

  it('overwrites the chunk that cancels (^C)', async () => {
    const t = fakeTerminal();
    const reader = new PassphraseReader({
      env: {},
      stdin: t.stdin as unknown as NodeJS.ReadStream,
      stderr: t.stderr as unknown as NodeJS.WriteStream,
    });
    const asked = reader.ask('Enter passphrase: ');
    const chunk = Buffer.from('secret\x03');
    t.stdin.emit('data', chunk);
    await assert.rejects(asked, /cancelled/);
    assert.ok(chunk.every((b) => b === 0));
  });
});
