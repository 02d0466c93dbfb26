// What a resident agent costs beside Node's own floor (`node -e 0`). Two V8
// settings, measured with bench/memory.ts and /proc/PID/smaps:
//
// - No TurboFan while the agent starts. Start-up is mostly require()'s path
//   handling, hot enough for V8 to optimize path.normalize, and that first
//   optimization pages in about 3 MB of the node binary's compiler code
//   (v8::internal::compiler) that an idle agent never runs again. TurboFan is
//   back on once the agent listens, for the request path under load.
// - The young generation grows to 4 MB per semi-space, not V8's 16. Under load
//   V8 doubles it at scavenges until its maximum, for garbage that lives one
//   request (a frame, a signature), and keeps it: up to 30 MB more resident.
//   At 4 MB a scavenge comes every few hundred signatures and costs about
//   what it costs at 16 (the survivors are the same); at V8's initial 1 MB it
//   would come four times as often (measured with --trace-gc: 29 µs of GC per
//   signature against 6). V8 reads its max only when the heap is set up, so the
//   cap is the growth factor: 1 during start-up and once the space has reached
//   the cap, V8's 2 below it (checked after each GC).
//
// Both flags are read by V8 when it decides (not when the heap is set up), so
// v8.setFlagsFromString works after start.

import * as v8 from 'node:v8';

/** Both semi-spaces of the young generation, as getHeapSpaceStatistics() counts new_space. */
export const YOUNG_GENERATION_CAP = 8 << 20;

/** Before the agent's modules load (main.ts, for every agent mode). */
export function startQuietly(): void {
  v8.setFlagsFromString('--no-turbofan');
  // Start-up's garbage fits V8's initial 1 MB: no growth before the first request.
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** Once the agent listens (serve.ts). */
export function startupDone(): void {
  v8.setFlagsFromString('--turbofan');
  capYoungGeneration();
}

/** After every GC (no timer: an idle agent stays asleep), hold new space at the cap. */
function capYoungGeneration(cap = YOUNG_GENERATION_CAP): void {
  const { PerformanceObserver } = require('node:perf_hooks') as typeof import('node:perf_hooks');
  let factor = 1; // startQuietly's
  const check = () => {
    const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    const want = !young || young.space_size >= cap ? 1 : 2;
    if (want === factor) return;
    factor = want;
    v8.setFlagsFromString(`--semi-space-growth-factor=${want}`);
  };
  new PerformanceObserver(check).observe({ entryTypes: ['gc'] });
}
