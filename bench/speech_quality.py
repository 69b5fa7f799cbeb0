#!/usr/bin/python3
"""Speech enhancement quality: gansynth against webrtcdsp, sox noisered and RNNoise, in one run,
on mixtures of validation speakers and validation noise packages (never trained on) at 0, 5
and 10 dB SNR, at 48 kHz (the podcast path).

    /usr/bin/python3 bench/speech_quality.py [--per-snr 160] [--model FILE] [--noise test]

160 mixtures per SNR by default (about 6 minutes on two cores): on 16 and 48, one method's
lead over another at 0 dB was within a standard error of the draw (a mixture's SI-SDRi
varies by several dB with its noise); on 160 the paired leads' standard errors are 0.13-0.54
dB (0.20-0.24 against RNNoise at 0 dB).

--precision int8 is the accuracy budget of gansynth's int8 path instead (ge-speech.h): gansynth
with precision=f32 and with precision=int8 on the same mixtures, their SI-SDRi and LSD, the paired
difference (budget: |int8 - f32| < 0.05 dB of mean SI-SDRi), the largest per-mixture difference
and the SNR of the int8 output against the f32 output; no other method runs.  With --write-auto a
model within the budget gets "precision_auto": "int8" in its metadata (auto then runs it so).

--noise test mixes the validation speakers with the blind test noises instead (packages kept
aside, which the shipped model's runs never trained on and no training choice looked at;
fetch_speech.py): a check that what was tuned while looking at the validation noises holds on
others.

Needs models/data/fetch_speech.py's data (its --eval-only is enough), a build (build/plugins),
gstreamer1.0-plugins-bad (webrtcdsp), sox, node and bench/node_modules (npm install
--ignore-scripts).

Each mixture: 1 s of noise alone, then 5 s of speech (validation clips end to end) plus the
noise, the noise scaled to the SNR against the active speech level, peak at -3 dBFS.
  gansynth  filesrc ! wavparse ! audioconvert ! gansynth ! audioconvert ! wavenc (defaults)
  webrtcdsp noise-suppression-level=very-high and nothing else: echo-cancel=false (no far end),
            gain-control=false (AGC changes the level, not the noise), high-pass-filter=false (it
            cuts the voice's lowest band, which SI-SDR counts against it: off, webrtcdsp scores
            better); delay-agnostic, extended-filter etc. are echo-canceller settings
  sox       noisered with a profile of the 1 s noise-only lead (sox's documented use), amount 0.5
            (its default)
  rnnoise   @jitsi/rnnoise-wasm (bench/rnnoise_run.mjs)
Every output is aligned to the input by the lag (within +-50 ms) that best correlates it with
the noisy mixture, then scored on the 5 s with speech:
  SI-SDR improvement  SI-SDR(output, clean) - SI-SDR(noisy, clean), dB, higher is better
  LSD                 log-spectral distance to the clean speech, dB (2048-sample frames, 75 %
                      overlap, full band, powers floored 80 dB below the clean's peak), lower
                      is better
Writes bench/out/speech/results.json and prints the tables for bench/RESULTS.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models", "gansynth"))
import train  # noqa: E402

RATE = 48000
LEAD_S, SPEECH_S = 1.0, 5.0
SNRS = (0, 5, 10)
METHODS = ("noisy", "gansynth", "webrtcdsp", "sox", "rnnoise")


def gst_env():
    env = dict(os.environ)
    env["GST_PLUGIN_PATH"] = os.path.join(ROOT, "build", "plugins")
    env["GST_REGISTRY_1_0"] = os.path.join(ROOT, "bench", "out", "registry.bin")
    return env


def speech_segment(speech, rng, n):
    out = np.zeros(n, np.float32)
    pos = 0
    while pos < n:
        _, c = speech[rng.integers(len(speech))]
        c = c.astype(np.float32) / 32768
        c = c / (train.active_rms(c, RATE) + 1e-6) * 0.05
        take = min(len(c), n - pos)
        out[pos:pos + take] = c[:take]
        pos += take + int(rng.integers(RATE // 20, RATE // 4))
    return out


def noise_segment(noise, rng, n):
    while True:
        _, c = noise[rng.integers(len(noise))]
        c = c.astype(np.float32) / 32768
        if train.rms(c) > 1e-4:
            break
    if len(c) < n:
        c = np.tile(c, n // len(c) + 1)
    s = int(rng.integers(0, len(c) - n + 1))
    return c[s:s + n].copy()


def mixtures(per_snr, seed=2024, noise_split="val"):
    speech = train.load_split("speech", "val", RATE)
    noise = train.load_split("noise", noise_split, RATE)
    rng = np.random.default_rng(seed)
    lead, ns = int(LEAD_S * RATE), int(SPEECH_S * RATE)
    out = []
    for snr in SNRS:
        for i in range(per_snr):
            s = np.concatenate([np.zeros(lead, np.float32), speech_segment(speech, rng, ns)])
            nz = noise_segment(noise, rng, lead + ns)
            nz *= train.active_rms(s[lead:], RATE) / train.rms(nz[lead:]) * 10 ** (-snr / 20)
            x = s + nz
            g = 10 ** (-3 / 20) / np.abs(x).max()
            out.append(dict(name=f"snr{snr:02d}_{i:02d}", snr=snr, clean=s * g, noisy=x * g, noise=nz * g))
    return out


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r


def enhance(method, items, d, model):
    """Writes d/<name>.<method>.wav for every item; returns the processing seconds."""
    t0 = time.time()
    if method == "rnnoise":
        args = []
        for it in items:
            it["noisy"].astype(np.float32).tofile(os.path.join(d, it["name"] + ".f32"))
            args += [os.path.join(d, it["name"] + ".f32"), os.path.join(d, it["name"] + ".rnnoise.f32")]
        run(["node", os.path.join(ROOT, "bench", "rnnoise_run.mjs")] + args)
        for it in items:
            y = np.fromfile(os.path.join(d, it["name"] + ".rnnoise.f32"), np.float32)
            sf.write(os.path.join(d, f"{it['name']}.rnnoise.wav"), y, RATE, subtype="FLOAT")
        return time.time() - t0
    for it in items:
        src, dst = os.path.join(d, it["name"] + ".wav"), os.path.join(d, f"{it['name']}.{method}.wav")
        if method == "sox":
            lead = os.path.join(d, it["name"] + ".lead.wav")
            prof = os.path.join(d, it["name"] + ".prof")
            sf.write(lead, it["noisy"][:int(LEAD_S * RATE)], RATE, subtype="FLOAT")
            run(["sox", lead, "-n", "noiseprof", prof])
            run(["sox", src, "-b", "32", "-e", "floating-point", dst, "noisered", prof, "0.5"])
            continue
        if method.startswith("gansynth"):
            el = "gansynth" + (f" model-file={model}" if model else "")
            if method != "gansynth":    # gansynth-f32, gansynth-int8: that precision
                el += " precision=" + method.split("-")[1]
        else:
            el = ("webrtcdsp echo-cancel=false gain-control=false high-pass-filter=false noise-suppression=true "
                  "noise-suppression-level=very-high")
        run(["gst-launch-1.0", "-q", "filesrc", f"location={src}", "!", "wavparse", "!", "audioconvert", "!"]
            + el.split() + ["!", "audioconvert", "!", "audio/x-raw,format=F32LE", "!", "wavenc", "!",
                            "filesink", f"location={dst}"], env=gst_env())
    return time.time() - t0


def align(y, x, max_lag):
    """y shifted by the lag in [-max_lag, max_lag] that best correlates it with x; same length."""
    n = len(x)
    y = np.pad(y[:n], (0, max(0, n - len(y))))
    f = np.fft.rfft(y, 2 * n) * np.conj(np.fft.rfft(x, 2 * n))
    c = np.fft.irfft(f, 2 * n)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    lag = lags[np.argmax(np.abs(np.concatenate([c[:max_lag + 1], c[-max_lag:]])))]
    out = np.zeros(n, np.float32)
    if lag >= 0:
        out[:n - lag] = y[lag:]
    else:
        out[-lag:] = y[:n + lag]
    return out, int(lag)


def si_sdr(est, ref):
    est, ref = est - est.mean(), ref - ref.mean()
    a = (est @ ref) / (ref @ ref + 1e-12)
    t = a * ref
    return 10 * np.log10((t @ t) / ((est - t) @ (est - t) + 1e-12) + 1e-12)


def lsd(est, ref, n=2048):
    def spec(x):
        w = np.hanning(n)
        fr = np.lib.stride_tricks.sliding_window_view(x, n)[::n // 4] * w
        return np.abs(np.fft.rfft(fr, axis=-1)) ** 2
    S, E = spec(ref), spec(est)
    floor = S.max() * 1e-8
    d = 10 * np.log10(np.maximum(S, floor)) - 10 * np.log10(np.maximum(E, floor))
    return float(np.mean(np.sqrt(np.mean(d ** 2, axis=-1))))


def precision_report(rows, items, args, model):
    """The int8 budget: its SI-SDRi and LSD against f32's on the same mixtures (the image
    models' budget and metadata mark: bench/precision_quality.py)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import precision_quality as P
    f32, cand = METHODS[1], METHODS[2]
    print(f"\n{len(items)} mixtures ({args.per_snr} per SNR), 48 kHz, {model}\n")
    print("| gansynth | SI-SDRi 0 dB | 5 dB | 10 dB | mean | LSD 0 dB | 5 dB | 10 dB | mean |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in (f32, cand):
        cells = []
        for key in ("si_sdri", "lsd"):
            for snr in list(SNRS) + [None]:
                cells.append(np.mean([r[m][key] for r in rows if snr is None or r["snr"] == snr]))
        print(f"| {m.split('-')[1]} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
    d = np.array([r[cand]["si_sdri"] - r[f32]["si_sdri"] for r in rows])
    dl = np.array([r[cand]["lsd"] - r[f32]["lsd"] for r in rows])
    snrs = []
    for it in items:
        a = sf.read(os.path.join(args.out, f"{it['name']}.{f32}.wav"), dtype="float64")[0]
        b = sf.read(os.path.join(args.out, f"{it['name']}.{cand}.wav"), dtype="float64")[0]
        snrs.append(10 * np.log10((a @ a + 1e-20) / ((a - b) @ (a - b) + 1e-20)))
    ok = abs(d.mean()) < P.BUDGET_DB
    print(f"\n{args.precision} - f32, per mixture: SI-SDRi {d.mean():+.4f} +- {d.std(ddof=1) / np.sqrt(len(d)):.4f} dB "
          f"(largest |difference| {np.abs(d).max():.3f}), LSD {dl.mean():+.4f} +- "
          f"{dl.std(ddof=1) / np.sqrt(len(dl)):.4f} dB; {args.precision} output against f32 output: SNR min "
          f"{min(snrs):.1f}, median {np.median(snrs):.1f} dB; within {P.BUDGET_DB} dB: {'yes' if ok else 'NO'}")
    if args.write_auto:
        P.set_precision_auto(model, ok, args.precision)
        print(f"{model}: precision_auto {args.precision if ok else '(unchanged)'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-snr", type=int, default=160)
    ap.add_argument("--model", default=None, help="gansynth model-file (default: the build's model)")
    ap.add_argument("--noise", choices=("val", "test"), default="val",
                    help="the validation noises, or the blind test noises")
    ap.add_argument("--out", default=None, help="default bench/out/speech (--noise test: speech-test)")
    ap.add_argument("--precision", choices=("int8",), default=None,
                    help="gansynth at f32 and at this precision only: the accuracy budget")
    ap.add_argument("--write-auto", action="store_true",
                    help="with --precision: mark the model if within the budget")
    args = ap.parse_args()
    global METHODS
    if args.precision:
        METHODS = ("noisy", "gansynth-f32", "gansynth-" + args.precision)
    args.out = args.out or os.path.join(ROOT, "bench", "out", "speech" if args.noise == "val" else "speech-test")
    model = args.model or os.path.join(ROOT, "models", "gansynth", "gansynth.safetensors")
    os.makedirs(args.out, exist_ok=True)
    items = mixtures(args.per_snr, noise_split=args.noise)
    for it in items:
        sf.write(os.path.join(args.out, it["name"] + ".wav"), it["noisy"], RATE, subtype="FLOAT")
    seconds = {}
    for m in METHODS[1:]:
        seconds[m] = enhance(m, items, args.out, model)
        print(f"{m}: {seconds[m]:.1f} s", flush=True)
    lead = int(LEAD_S * RATE)
    rows = []
    for it in items:
        r = {"name": it["name"], "snr": it["snr"]}
        base = si_sdr(it["noisy"][lead:], it["clean"][lead:])
        for m in METHODS:
            y = it["noisy"] if m == "noisy" else sf.read(os.path.join(args.out, f"{it['name']}.{m}.wav"),
                                                         dtype="float32")[0]
            y, lag = align(y, it["noisy"], RATE // 20)
            r[m] = {"si_sdri": float(si_sdr(y[lead:], it["clean"][lead:]) - base),
                    "lsd": lsd(y[lead:], it["clean"][lead:]), "lag": lag}
        rows.append(r)
    summary = {}
    for m in METHODS:
        summary[m] = {}
        for snr in list(SNRS) + ["mean"]:
            sel = [r for r in rows if snr == "mean" or r["snr"] == snr]
            summary[m][str(snr)] = {k: float(np.mean([r[m][k] for r in sel])) for k in ("si_sdri", "lsd")}
        summary[m]["lags"] = sorted({r[m]["lag"] for r in rows})
    json.dump({"rows": rows, "summary": summary, "seconds": seconds, "per_snr": args.per_snr,
               "model": model, "noise": args.noise}, open(os.path.join(args.out, "results.json"), "w"), indent=1)
    if args.precision:
        precision_report(rows, items, args, model)
        return
    noises = "validation noises" if args.noise == "val" else "blind test noises"
    print(f"\n{len(items)} mixtures ({args.per_snr} per SNR), 48 kHz, validation speakers, {noises}\n")
    print("| method | SI-SDRi 0 dB | 5 dB | 10 dB | mean | LSD 0 dB | 5 dB | 10 dB | mean |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in METHODS:
        s = summary[m]
        print(f"| {m} | " + " | ".join(f"{s[k]['si_sdri']:.2f}" for k in ("0", "5", "10", "mean")) + " | "
              + " | ".join(f"{s[k]['lsd']:.2f}" for k in ("0", "5", "10", "mean")) + " |")
    # the mixtures differ far more among themselves than the methods do: the paired difference
    # and its standard error say whether a gap in the table is larger than the draw's spread
    for key, what, sign in (("si_sdri", "SI-SDRi of gansynth minus each method's", 1),
                            ("lsd", "LSD of each method minus gansynth's", -1)):
        print(f"\n{what}, per mixture: mean +- standard error (mixtures where gansynth is ahead)\n")
        print("| gansynth against | 0 dB | 5 dB | 10 dB |")
        print("|---|---:|---:|---:|")
        for m in METHODS[2:]:
            cells = []
            for snr in SNRS:
                d = sign * np.array([r["gansynth"][key] - r[m][key] for r in rows if r["snr"] == snr])
                cells.append(f"{d.mean():.2f} +- {d.std(ddof=1) / np.sqrt(len(d)):.2f} ({(d > 0).sum()}/{len(d)})")
            print(f"| {m} | " + " | ".join(cells) + " |")
    print("\nalignment lags (samples):", {m: summary[m]["lags"] for m in METHODS[1:]})


if __name__ == "__main__":
    main()
