// What a resident agent costs beside Node's own floor (`node -e 0`). Two V8
// settings, measured with bench/memory.ts and /proc/PID/smaps:
//
// - No TurboFan while the agent starts. Start-up is mostly require()'s path
//   handling, hot enough for V8 to optimize path.normalize, and that first
//   optimization pages in about 3 MB of the node binary's compiler code
//   (v8::internal::compiler) that an idle agent never runs again. TurboFan is
//   back on once the agent listens, for the request path under load.
// - The young generation keeps its initial size. Under load V8 grows each of
//   its two semi-spaces up to 16 MB for garbage that lives one request (a
//   frame, a signature), and keeps them: 30 MB more resident for no gain in
//   throughput at the agent's allocation rate.
//
// Both flags are read by V8 when it decides (not when the heap is set up), so
// v8.setFlagsFromString works after start; V8 ignores a flag it does not know.

import * as v8 from 'node:v8';

/** Before the agent's modules load (main.ts, for every agent mode). */
export function startQuietly(): void {
  v8.setFlagsFromString('--no-turbofan');
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** Once the agent listens (serve.ts). */
export function startupDone(): void {
  v8.setFlagsFromString('--turbofan');
}
