#!/usr/bin/python3
"""Exports a gansynth checkpoint (train.py's best.pt, last.pt or ckpt-*.pt) to the .safetensors
file the engine loads (engine/ge-speech.h): the generator's weights as F32 (the EMA weights when
the run kept them; the discriminator is only for training) with "architecture":
"SpectralMaskGRU" and the config in the __metadata__.

    /usr/bin/python3 models/gansynth/export.py [--no-deep-filter] _work/gansynth/best.pt models/gansynth/gansynth.safetensors

--no-deep-filter leaves the deep filter's head out (its phase inputs stay): for a run whose
head stayed near zero, where it would cost multiply-adds for nothing.  Measure the file.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import net  # noqa: E402
import st  # noqa: E402
from train import validated_generator  # noqa: E402


def export(G, path, **extra):
    meta = {"architecture": "SpectralMaskGRU", "config": json.dumps(G.config())}
    meta.update({k: json.dumps(v) for k, v in extra.items()})
    tensors = {k: v.detach().float().contiguous() for k, v in G.state_dict().items()}
    st.save(path, tensors, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-deep-filter", action="store_true")
    ap.add_argument("src")
    ap.add_argument("dst")
    args = ap.parse_args()
    ck = torch.load(args.src, map_location="cpu")
    cfg, weights = ck["config"], validated_generator(ck)
    extra = {}
    if args.no_deep_filter:
        if not cfg.get("df_bins"):
            ap.error(f"{args.src} has no deep filter to leave out")
        G = net.SpectralMaskGRU.from_config(cfg, df_bins=0, df_taps=0,
                                            phase_bins=cfg.get("phase_bins", cfg.get("df_bins", 0)))
        w = torch.cat([weights["df.weight"].flatten(), weights["df.bias"]])
        extra["deep_filter_dropped"] = {"rms": float(w.pow(2).mean().sqrt()), "max": float(w.abs().max())}
        weights = {k: v for k, v in weights.items() if not k.startswith("df.")}
    else:
        G = net.SpectralMaskGRU.from_config(cfg)
    G.load_state_dict(weights)
    training = {"step": ck["step"], "val_si_sdri": ck.get("val")}
    if "averaged" in ck:                # average.py's mean of these checkpoints' generators
        training["averaged_from"] = [os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p)
                                     for p in ck["averaged"]]
    export(G, args.dst, training=training, **extra)
    print(f"{args.dst}: step {ck['step']}, {sum(p.numel() for p in G.parameters())} parameters, "
          f"{os.path.getsize(args.dst) / 1e6:.2f} MB" + (f", deep filter dropped {extra}" if extra else ""))


if __name__ == "__main__":
    main()
