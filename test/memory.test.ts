// The resident agent's memory (issue 15), measured as `npm run bench` does
// (bench/memory.ts), in one run with a one-second load: idle, 20 s after
// start-up without a request, within 8 MB of an idle `node`; after 200 keys
// and signing at 64 connections, within 16 MB of idle. What keeps it so:
// src/daemon/memory.ts's V8 settings, the modules only some agents need
// loaded when first used, and no `import * as` of Node's modules (see the
// layers test). On a quiet machine the idle agent is about 7 MB above the
// floor and the loaded one about 12 MB above idle.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { measureMemory } from '../bench/memory';

describe('memory: a quiet resident', () => {
  it('idle within 8 MB of node, loaded within 16 MB of idle', { timeout: 60_000 }, async () => {
    const m = await measureMemory({ durationMs: 1000 });
    const figures = JSON.stringify(m);
    assert.ok(m.idleMb - m.floorMb <= 8, `idle ${m.idleMb} MB, floor ${m.floorMb} MB: ${figures}`);
    assert.ok(
      m.loadedMb - m.idleMb <= 16,
      `loaded ${m.loadedMb} MB, idle ${m.idleMb} MB: ${figures}`,
    );
    assert.ok(m.opsPerSec > 0);
  });
});
