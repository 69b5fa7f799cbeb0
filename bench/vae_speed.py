#!/usr/bin/python3
"""vaeencode / vaedecode speed on 1280x720 frames, with ONNX Runtime on the same networks.

1. Engine: 1280x720 RGB frames (videotestsrc, scrolling) through `vaeencode ! vaedecode` of
   build/plugins (model-file=M, n-threads 1 and 2) into fakesink; each element is timed in its
   own run between its sink and src pads (speedkit.time_element): the whole of its work per
   frame (encoder: frame to floats, padding, the encoder, the latent buffer; decoder: the
   decoder, cropping, floats to the frame).
2. ONNX Runtime: the same AutoencoderKL's encode (image [1, 3, 720, 1280] -> mean and logvar,
   quant_conv included) and decode (latent -> image, post_quant_conv included) exported from
   PyTorch, one session.run per frame, intraOpNumThreads 1 and 2.
Engine and ORT take turns for --rounds rounds; the ratio reported is the median of the rounds'
ratios.  Background training is paused during the timing runs (bench/speedkit.py).

Run from the repository root after `meson compile -C build` and
`(cd bench && npm install --ignore-scripts)`:

    /usr/bin/python3 bench/vae_speed.py --model models/vae/vae.safetensors

Writes bench/out/vae_speed/results.md and results.json.
"""

import argparse
import json
import os
import shlex
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "common"))

import speedkit as S  # noqa: E402
import sr_quality as Q  # noqa: E402

W, H = 1280, 720


def main():
    ap = argparse.ArgumentParser(description="VAE encode/decode speed (engine vs ONNX Runtime)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-pause", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "vae_speed"))
    args = ap.parse_args()

    import torch
    import diffusers_torch as dt
    torch.set_num_threads(2)
    command = "/usr/bin/python3 " + shlex.join([Q.rel(sys.argv[0])] + sys.argv[1:])
    threads = [int(t) for t in args.threads.split(",")]
    os.makedirs(args.out, exist_ok=True)

    vae, meta = dt.load_file(args.model)
    cfg = json.loads(meta["config"])
    f = 2 ** (len(cfg["block_out_channels"]) - 1)

    class Enc(torch.nn.Module):
        def __init__(self, v):
            super().__init__()
            self.v = v

        def forward(self, x):
            h = self.v.encoder(x)
            return self.v.quant_conv(h) if self.v.quant_conv is not None else h

    class Dec(torch.nn.Module):
        def __init__(self, v):
            super().__init__()
            self.v = v

        def forward(self, z):
            return self.v.decode(z).sample

    g = torch.Generator().manual_seed(0)
    x = torch.rand([1, 3, H, W], generator=g) * 2 - 1
    z = torch.randn([1, cfg["latent_channels"], -(-H // f), -(-W // f)], generator=g)
    ort_cfg = {"encode": S.export_onnx(Enc(vae), x, args.out, "vae_encoder"),
               "decode": S.export_onnx(Dec(vae), z, args.out, "vae_decoder")}
    model = shlex.quote(os.path.abspath(args.model))

    rounds = []
    for rnd in range(args.rounds):
        one = {"engine": {"encode": {}, "decode": {}}, "ort": {}}
        for n in threads:
            for part, name in (("encode", "enc"), ("decode", "dec")):
                desc = (f"videotestsrc num-buffers={args.warmup + args.frames} pattern=smpte horizontal-speed=4 ! "
                        f"video/x-raw,format=RGB,width={W},height={H},framerate=30/1 ! "
                        f"vaeencode name=enc model-file={model} n-threads={n} ! "
                        f"vaedecode name=dec model-file={model} n-threads={n} ! fakesink sync=false")
                with S.TrainingPaused(not args.no_pause, 600):
                    one["engine"][part][n] = S.time_element(desc, name, args.warmup, args.frames)
        for part in ("encode", "decode"):
            with S.TrainingPaused(not args.no_pause, 600):
                one["ort"][part] = S.run_ort(ort_cfg[part], args.out, threads, args.warmup, args.frames)
        rounds.append(one)
        for part in ("encode", "decode"):
            for n in threads:
                e = one["engine"][part][n]["median_ms"]
                o = one["ort"][part]["threads"][str(n)]["median_ms"]
                print(f"round {rnd + 1}: {part} {n} thr: engine {e:.1f} ms, ORT {o:.1f}: {e / o:.2f}", flush=True)

    last = rounds[-1]["ort"]
    md = ["# vaeencode / vaedecode speed", "", "Command line (from the repository root):", "", "```sh", command,
          "```", "",
          f"Model `{Q.rel(args.model)}` ({sum(p.numel() for p in vae.parameters())} parameters, factor {f}); "
          f"{W}x{H} frames.  {args.rounds} rounds, each the engine then ORT, "
          f"each the median of {args.frames} frames after {args.warmup} warm-up frame(s).  ORT: onnxruntime-node "
          f"{last['encode']['onnxruntime_node']}, one session.run per frame; max |ORT - torch| "
          f"{last['encode']['threads'][str(threads[0])]['max_abs_diff_vs_torch']:.2e} (encode), "
          f"{last['decode']['threads'][str(threads[0])]['max_abs_diff_vs_torch']:.2e} (decode).", "",
          "| part | threads | engine ms/frame (median of rounds) | ORT ms/frame | engine / ORT per round | "
          "engine / ORT (median) |", "|---|---:|---:|---:|---|---:|"]
    ratios = {}
    for part in ("encode", "decode"):
        for n in threads:
            es = [r["engine"][part][n]["median_ms"] for r in rounds]
            os_ = [r["ort"][part]["threads"][str(n)]["median_ms"] for r in rounds]
            rr = [e / o for e, o in zip(es, os_)]
            ratios[f"{part}-{n}"] = statistics.median(rr)
            md.append(f"| {part} | {n} | {statistics.median(es):.1f} | {statistics.median(os_):.1f} | "
                      + ", ".join(f"{r:.2f}" for r in rr) + f" | {ratios[f'{part}-{n}']:.2f} |")
    with open(os.path.join(args.out, "results.json"), "w") as fo:
        json.dump({"command": command, "rounds": rounds, "ratio_engine_over_ort": ratios}, fo, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as fo:
        fo.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
