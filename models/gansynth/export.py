#!/usr/bin/python3
"""Exports a gansynth checkpoint (train.py's best.pt, last.pt or ckpt-*.pt) to the .safetensors
file the engine loads (engine/ge-speech.h): the generator's weights as F32 (the EMA weights when
the run kept them; the discriminator is only for training) with "architecture":
"SpectralMaskGRU" and the config in the __metadata__.

    /usr/bin/python3 models/gansynth/export.py _work/gansynth/best.pt models/gansynth/gansynth.safetensors
"""
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
    src, dst = sys.argv[1], sys.argv[2]
    ck = torch.load(src, map_location="cpu")
    cfg = ck["config"]
    G = net.SpectralMaskGRU(cfg["hidden"], cfg["gru_layers"], cfg["conv_kernel"], cfg["frame_ms"],
                            cfg["hop_ms"], cfg.get("lookahead_frames", 0), cfg.get("df_bins", 0),
                            cfg.get("df_taps", 0))
    G.load_state_dict(validated_generator(ck))
    export(G, dst, training={"step": ck["step"], "val_si_sdri": ck.get("val")})
    print(f"{dst}: step {ck['step']}, {sum(p.numel() for p in G.parameters())} parameters, "
          f"{os.path.getsize(dst) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
