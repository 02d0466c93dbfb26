// What a resident agent costs beside Node's own floor (`node -e 0`). Two V8
// settings, measured with bench/memory.ts and /proc/PID/smaps:
//
// - No TurboFan while the agent starts. Start-up is mostly require()'s path
//   handling, hot enough for V8 to optimize path.normalize, and that first
//   optimization pages in about 3 MB of the node binary's compiler code
//   (v8::internal::compiler) that an idle agent never runs again. TurboFan is
//   back on once the agent listens, for the request path under load (without
//   it ed25519 signing at 64 connections is a third slower).
// - The young generation never grows: it stays at V8's initial 1 MB
//   semi-spaces (2 MB in all). Under load V8 doubles it at scavenges until its
//   maximum (16 MB semi-spaces), for garbage that lives one request (a frame, a
//   signature), and keeps it resident: at 4 MB semi-spaces the loaded agent had
//   6 MB more. At 1 MB a scavenge comes every ~120 signatures at 64
//   connections and takes ~0.4 ms (--trace-gc): 3-4 µs of GC per signature
//   against 2 at 4 MB, next to ~100 µs for the signature itself. V8 reads the
//   semi-space maximum only when the heap is set up, so the cap is the growth
//   factor: 1, read at each scavenge. With no growth to watch there is no GC
//   observer either (perf_hooks costs the idle agent memory).
//
// Both flags are read by V8 when it decides (not when the heap is set up), so
// v8.setFlagsFromString works after start.

import v8 = require('node:v8');

/** Before the agent's modules load (main.ts, for every agent mode). */
export function startQuietly(): void {
  v8.setFlagsFromString('--no-turbofan');
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** Once the agent listens (serve.ts). */
export function startupDone(): void {
  v8.setFlagsFromString('--turbofan');
}
