// rnnoise_run.mjs: RNNoise (npm @jitsi/rnnoise-wasm, its synchronous
// WebAssembly build) on raw float32 mono 48 kHz files, for the speech
// benches.  The package's dist/rnnoise-sync.js is an ES module with a .js
// name; it is copied to out/rnnoise-sync.mjs (with its .wasm) for node.
//
//   node rnnoise_run.mjs IN.f32 OUT.f32 [IN.f32 OUT.f32 ...]
//
// Frames of 480 samples in int16 scale, as RNNoise wants; the output is
// RNNoise's as it comes (one frame late: the benches align it).  Prints
// {"process_ms": [...]} with the time of the processing loop of each file.
import fs from 'fs';
import path from 'path';
import { fileURLToPath } from 'url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'node_modules', '@jitsi', 'rnnoise-wasm', 'dist');
const out = path.join(here, 'out');
fs.mkdirSync(out, { recursive: true });
fs.copyFileSync(path.join(dist, 'rnnoise-sync.js'), path.join(out, 'rnnoise-sync.mjs'));
fs.copyFileSync(path.join(dist, 'rnnoise.wasm'), path.join(out, 'rnnoise.wasm'));
const { default: create } = await import(path.join(out, 'rnnoise-sync.mjs'));
const m = create();
const FRAME = 480;
const pIn = m._malloc(FRAME * 4), pOut = m._malloc(FRAME * 4);
const times = [];

for (let a = 2; a + 1 < process.argv.length; a += 2) {
  const buf = fs.readFileSync(process.argv[a]);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const n = Math.ceil(x.length / FRAME) * FRAME;
  const y = new Float32Array(n);
  const st = m._rnnoise_create(0);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i += FRAME) {
    const heapIn = new Float32Array(m.HEAPF32.buffer, pIn, FRAME);
    for (let k = 0; k < FRAME; k++) heapIn[k] = (i + k < x.length ? x[i + k] : 0) * 32768;
    m._rnnoise_process_frame(st, pOut, pIn);
    const heapOut = new Float32Array(m.HEAPF32.buffer, pOut, FRAME);
    for (let k = 0; k < FRAME; k++) y[i + k] = heapOut[k] / 32768;
  }
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  m._rnnoise_destroy(st);
  fs.writeFileSync(process.argv[a + 1], Buffer.from(y.buffer, 0, x.length * 4));
}
console.log(JSON.stringify({ process_ms: times }));
