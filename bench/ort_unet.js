#!/usr/bin/env node
// Times the benchmark UNet (out/unet_bench/unet.onnx, written by unet_bench_model.py) with ONNX
// Runtime for Node on the CPU, with 1 and 2 intra-op threads, and checks it against PyTorch.
//
//   cd bench && npm install --ignore-scripts && node ort_unet.js [--runs N] [--warmup N] [--threads 1,2]
//
// Prints one JSON object: per thread count the median / min / all run times in ms, and the max
// abs difference between ORT's output and PyTorch's (out/unet_bench/torch_out.bin) for the same
// fixed input (out/unet_bench/input_sample.bin, input_timestep.bin).
'use strict';

const fs = require('fs');
const path = require('path');

const ort = require('onnxruntime-node');

const MODEL_DIR = path.join(__dirname, 'out', 'unet_bench');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

// Reads a little-endian raw file into a typed array of the given class.
function readBin(file, Type) {
  const buf = fs.readFileSync(path.join(MODEL_DIR, file));
  const copy = new ArrayBuffer(buf.length);
  new Uint8Array(copy).set(buf);
  return new Type(copy);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
  const runs = parseInt(arg('--runs', '7'), 10);
  const warmup = parseInt(arg('--warmup', '3'), 10);
  const threadList = arg('--threads', '1,2').split(',').map((s) => parseInt(s, 10));

  const modelPath = path.join(MODEL_DIR, 'unet.onnx');
  const sample = readBin('input_sample.bin', Float32Array);
  const timestep = readBin('input_timestep.bin', BigInt64Array);
  const ref = readBin('torch_out.bin', Float32Array);
  const feeds = {
    sample: new ort.Tensor('float32', sample, [1, 3, 256, 256]),
    timestep: new ort.Tensor('int64', timestep, [1]),
  };

  const result = {
    onnxruntime_node: require('onnxruntime-node/package.json').version,
    backends: ort.listSupportedBackends ? ort.listSupportedBackends().map((b) => b.name) : undefined,
    node: process.version,
    model: path.relative(__dirname, modelPath),
    runs,
    warmup,
    threads: {},
  };

  for (const n of threadList) {
    // Creating a session loads the native binding (onnxruntime_binding.node): it fails loudly if absent.
    const session = await ort.InferenceSession.create(modelPath, {
      executionProviders: ['cpu'],
      intraOpNumThreads: n,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    let out;
    for (let i = 0; i < warmup; i++) out = await session.run(feeds);
    const times = [];
    const cpu = [];   // CPU time of the process (all threads): on a shared machine, time-slicing leaves it alone
    for (let i = 0; i < runs; i++) {
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      out = await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1e3);
    }
    // ORT vs PyTorch on the same input and weights
    const got = out[session.outputNames[0]].data;
    let maxDiff = 0;
    let maxRef = 0;
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[i] - ref[i]));
      maxRef = Math.max(maxRef, Math.abs(ref[i]));
    }
    result.threads[n] = {
      median_ms: median(times),
      median_cpu_ms: median(cpu),
      min_ms: Math.min(...times),
      times_ms: times.map((t) => Math.round(t * 100) / 100),
      max_abs_diff_vs_torch: maxDiff,
      max_abs_torch: maxRef,
    };
    if (session.release) await session.release();
  }
  // Proof that the native binding is what ran (Linux): it is mapped into this process.
  try {
    const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n');
    const lib = maps.find((l) => l.includes('onnxruntime_binding.node'));
    result.native_binding = lib ? path.basename(lib.trim().split(/\s+/).pop()) + ' (mapped)' : 'not mapped';
  } catch (e) {
    result.native_binding = 'unknown (no /proc/self/maps)';
  }
  console.log(JSON.stringify(result, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
