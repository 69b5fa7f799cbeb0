#!/usr/bin/python3
"""The engine benchmark of issue 2, in one run: conv2d against OpenBLAS sgemm,
and the U-Net forward (256x256, ~4.3M parameters) in the engine (f32, bf16,
int8) against PyTorch and ONNX Runtime on the same weights, 1 and 2
threads, medians.

    /usr/bin/python3 bench/run_engine_bench.py [--build build] [--runs 7] [--rounds 3]

Each round runs the three U-Net timings back to back, so a background load
hits all of them alike; the reported number per engine is the median over
all rounds' medians.  Prints a markdown section for bench/RESULTS.md.
Needs the build, /usr/bin/python3 with torch, and node (it installs
onnxruntime-node into bench/node_modules with --ignore-scripts when missing).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = os.path.join(HERE, "out", "unet_bench")


def run(cmd, cwd=ROOT, env=None):
    e = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    e.update(env or {})
    return subprocess.run(cmd, cwd=cwd, env=e, check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    if not os.path.exists(os.path.join(MODEL, "unet.onnx")):
        run(["/usr/bin/python3", os.path.join(HERE, "unet_bench_model.py")])
    if not os.path.isdir(os.path.join(HERE, "node_modules", "onnxruntime-node")):
        run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=HERE)

    conv = run([os.path.join(args.build, "bench", "conv_bench"), "--runs", str(args.runs)])

    times = {"engine": {}, "engine_bf16": {}, "engine_int8": {}, "torch": {}, "ort": {}}
    cpu_ms = {"engine": [], "engine_bf16": [], "engine_int8": [], "ort": []}
    params = None
    bf16_runs_as = int8_runs_as = None
    for _ in range(args.rounds):
        e = json.loads(run([os.path.join(args.build, "bench", "unet_bench"), MODEL,
                            "--runs", str(args.runs)]))
        params = e["params"]
        eb = json.loads(run([os.path.join(args.build, "bench", "unet_bench"), MODEL,
                             "--runs", str(args.runs), "--precision", "bf16"]))
        bf16_runs_as = eb.get("precision")
        e8 = json.loads(run([os.path.join(args.build, "bench", "unet_bench"), MODEL,
                             "--runs", str(args.runs), "--precision", "int8"]))
        int8_runs_as = e8.get("precision")
        t = json.loads(run(["/usr/bin/python3", os.path.join(HERE, "torch_unet.py"),
                            "--runs", str(args.runs)]))
        o = json.loads(run(["node", os.path.join(HERE, "ort_unet.js"), "--runs", str(args.runs)],
                           cwd=HERE))
        for name, res in (("engine", e), ("engine_bf16", eb), ("engine_int8", e8), ("ort", o)):
            cpu_ms[name].append(res["threads"]["1"]["median_cpu_ms"])
        for name, res in (("engine", e), ("engine_bf16", eb), ("engine_int8", e8), ("torch", t), ("ort", o)):
            for n, r in res["threads"].items():
                times[name].setdefault(n, []).append(r["median_ms"])
        diff = e["threads"]["1"]["max_abs_diff_vs_torch"]
        diff_bf16 = eb["threads"]["1"]["max_abs_diff_vs_torch"]
        diff_int8 = e8["threads"]["1"]["max_abs_diff_vs_torch"]

    med = {k: {n: statistics.median(v) for n, v in d.items()} for k, d in times.items()}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    print("## Engine: conv2d and U-Net forward (issue 2)\n")
    print(f"Run {time.strftime('%Y-%m-%d')} on {cpu}, {os.cpu_count()} cores, with "
          "`/usr/bin/python3 bench/run_engine_bench.py` "
          f"(runs {args.runs}, rounds {args.rounds}).\n")
    print("### conv2d vs OpenBLAS sgemm (same GEMM shape, same run)\n")
    print(conv)
    print(f"### U-Net forward, 1x3x256x256, {params} parameters (ms, median of round medians)\n")
    print(f"Engine in f32, bf16 (runs as {bf16_runs_as}) and int8 (runs as {int8_runs_as}), PyTorch and "
          f"ONNX Runtime (fp32) in turn in each round; load average at the end {os.getloadavg()[0]:.1f}.\n")
    print("| threads | engine f32 | engine bf16 | engine int8 | PyTorch | ONNX Runtime | f32 / ORT | bf16 / ORT | "
          "int8 / ORT | bf16 / f32 | int8 / f32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sorted(med["engine"]):
        en, eb, e8, to, ort = (med["engine"][n], med["engine_bf16"][n], med["engine_int8"][n], med["torch"][n],
                               med["ort"][n])
        print(f"| {n} | {en:.1f} | {eb:.1f} | {e8:.1f} | {to:.1f} | {ort:.1f} | {en / ort:.2f} | {eb / ort:.2f} | "
              f"{e8 / ort:.2f} | {eb / en:.2f} | {e8 / en:.2f} |")
    print(f"\nEngine output vs PyTorch: max abs difference {diff:.2g} (f32), {diff_bf16:.2g} (bf16), "
          f"{diff_int8:.2g} (int8).")
    cm = {k: statistics.median(v) for k, v in cpu_ms.items()}
    ratios = [b / o for b, o in zip(cpu_ms["engine_bf16"], cpu_ms["ort"])]
    print("\nOne thread, CPU time of each process (median of round medians, ms; time-slicing on a shared "
          "machine does not enter it): engine f32 %.1f, bf16 %.1f, int8 %.1f, ONNX Runtime %.1f; bf16 / ORT %.2f "
          "(rounds %s), int8 / ORT %.2f, f32 / ORT %.2f, bf16 / f32 %.2f." % (
              cm["engine"], cm["engine_bf16"], cm["engine_int8"], cm["ort"], cm["engine_bf16"] / cm["ort"],
              ", ".join("%.2f" % r for r in ratios), cm["engine_int8"] / cm["ort"], cm["engine"] / cm["ort"],
              cm["engine_bf16"] / cm["engine"]))
    print("\nAll round medians (ms): " + json.dumps(times))


if __name__ == "__main__":
    sys.exit(main())
