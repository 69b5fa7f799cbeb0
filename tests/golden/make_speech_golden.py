#!/usr/bin/python3
"""Golden outputs of the speech enhancer (engine/ge-speech.h), computed with the PyTorch
reference models/gansynth/net.py (whole-signal STFT, mask, overlap-add: not streaming), for
tests/engine/test-speech.c.

    /usr/bin/python3 tests/golden/make_speech_golden.py

Writes tests/golden/speech/model.safetensors (a small SpectralMaskGRU: hidden 24, 2 layers,
kernel 3, 20 ms frames, seeded weights with biases spread so gains cover 0..1) and
io.safetensors: for 16 and 48 kHz, a 0.37 s test signal (a chirp, a tone and noise), the output
at strength 1 and 0.4 and the voice activity per hop (that model is also the element tests'
default, tests/elements/models/gansynth.safetensors); model40 and io40 the same with 40 ms
frames, modelahead and ioahead with 20 ms frames that look two hops ahead, modeldf and iodf the
same with a deep filter (net.py) of 5 taps on the lowest 40 bins and their phase inputs
(config without phase_bins: its default), modelph and ioph with those phase inputs alone.
"""
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "models", "gansynth"))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
import export  # noqa: E402
import net  # noqa: E402
import st  # noqa: E402


def signal(rate, seconds=0.37, seed=3):
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 4000 * t ** 2))
    tone = 0.1 * np.sin(2 * np.pi * 1234.5 * t) * (t > 0.1)
    return torch.from_numpy((chirp + tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32))


def spread_biases(G):
    with torch.no_grad():
        for name, p in G.named_parameters():
            if "bias" in name:
                p.uniform_(-2, 2)


@torch.no_grad()
def outputs(G):
    io = {}
    for rate in (16000, 48000):
        x = signal(rate)
        y, vad = G(x[None], rate)
        yh, _ = G(x[None], rate, strength=0.4)
        io[f"in{rate}"], io[f"out{rate}"], io[f"out{rate}_s04"] = x, y[0], yh[0]
        io[f"vad{rate}"] = vad[0]
    return io


def main():
    out = os.path.join(HERE, "speech")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(11)
    G = net.SpectralMaskGRU(hidden=24, layers=2, kernel=3)
    spread_biases(G)
    export.export(G, os.path.join(out, "model.safetensors"))
    # the element tests' "installed" model (GST_GENERATIVE_MODEL_DIR) is the same one
    shutil.copyfile(os.path.join(out, "model.safetensors"),
                    os.path.join(ROOT, "tests", "elements", "models", "gansynth.safetensors"))
    st.save(os.path.join(out, "io.safetensors"), outputs(G))
    # 40 ms frames every 10 ms (four frames overlap; 25 Hz bins)
    torch.manual_seed(12)
    G40 = net.SpectralMaskGRU(hidden=24, layers=2, kernel=3, frame_ms=40)
    spread_biases(G40)
    export.export(G40, os.path.join(out, "model40.safetensors"))
    st.save(os.path.join(out, "io40.safetensors"), outputs(G40))
    # 20 ms frames whose gains come from two hops later (kernel 5: 3 taps of history, 2 ahead)
    torch.manual_seed(13)
    Ga = net.SpectralMaskGRU(hidden=24, layers=2, kernel=5, lookahead=2)
    spread_biases(Ga)
    export.export(Ga, os.path.join(out, "modelahead.safetensors"))
    st.save(os.path.join(out, "ioahead.safetensors"), outputs(Ga))
    # and a deep filter over the frames t + 2 .. t - 2 of the lowest 40 bins (2 kHz); its head
    # and its phase inputs start at zero, so draw them
    torch.manual_seed(14)
    Gd = net.SpectralMaskGRU(hidden=24, layers=2, kernel=5, lookahead=2, df_bins=40, df_taps=5)
    spread_biases(Gd)
    with torch.no_grad():
        Gd.df.weight.normal_(0, 0.3)
        Gd.conv_in.weight[:, Gd.bins:].normal_(0, 0.3)
    export.export(Gd, os.path.join(out, "modeldf.safetensors"))
    st.save(os.path.join(out, "iodf.safetensors"), outputs(Gd))
    # the phase inputs of the lowest 40 bins without the deep filter
    torch.manual_seed(15)
    Gp = net.SpectralMaskGRU(hidden=24, layers=2, kernel=5, lookahead=2, phase_bins=40)
    spread_biases(Gp)
    with torch.no_grad():
        Gp.conv_in.weight[:, Gp.bins:].normal_(0, 0.3)
    export.export(Gp, os.path.join(out, "modelph.safetensors"))
    st.save(os.path.join(out, "ioph.safetensors"), outputs(Gp))


if __name__ == "__main__":
    main()
