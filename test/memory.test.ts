// The resident agent's memory (issue 15), measured as `npm run bench` does
// (bench/memory.ts): idle, 20 s after start-up without a request, within 8 MB
// of an idle `node`; after 200 keys and two seconds of signing at 64
// connections, within 16 MB of idle. Without src/daemon/memory.ts's V8
// settings the idle agent is about 10 MB above Node's floor (TurboFan's code,
// paged in at start-up for require()'s path handling).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { measureMemory } from '../bench/memory';

describe('memory: a quiet resident', () => {
  it('idle within 8 MB of node, loaded within 16 MB of idle', async () => {
    const m = await measureMemory();
    const figures = JSON.stringify(m);
    assert.ok(m.idleMb - m.floorMb <= 8, `idle ${m.idleMb} MB, floor ${m.floorMb} MB: ${figures}`);
    assert.ok(
      m.loadedMb - m.idleMb <= 16,
      `loaded ${m.loadedMb} MB, idle ${m.idleMb} MB: ${figures}`,
    );
    assert.ok(m.opsPerSec > 0);
  });
});
