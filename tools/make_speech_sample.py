#!/usr/bin/python3
"""Makes samples/noisy-speech.ogg, the bundled noisy recording of gansynth's recipes and tests,
from the VALIDATION split of models/data/fetch_speech.py (speakers and noise packages that no
model was trained on).

    /usr/bin/python3 tools/make_speech_sample.py

8 s at 48 kHz, mono, Ogg Vorbis (oggenc quality 6): the first second is the noise alone (rain
from gcompris-qt-data's memory-sound activity, or the first validation noise with "rain" in its
name), then Czech dialogue of fillets-ng-data-cs's minor voices over it at 5 dB SNR.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models", "gansynth"))
import train  # noqa: E402

RATE, LEAD, SECONDS, SNR = 48000, 1.0, 8.0, 5.0


def main():
    speech = [c for g, c in train.load_split("speech", "val", RATE) if g.startswith("fillets")]
    noise = train.load_split("noise", "val", RATE, names=True)
    rain = [c for g, c, name in noise if "rain" in name.lower()] or [noise[0][1]]
    rng = np.random.default_rng(7)
    n, lead = int(SECONDS * RATE), int(LEAD * RATE)
    s = np.zeros(n, np.float32)
    pos = lead
    while pos < n - RATE // 2:
        c = speech[rng.integers(len(speech))].astype(np.float32) / 32768
        take = min(len(c), n - pos)
        s[pos:pos + take] = c[:take] / (train.active_rms(c, RATE) + 1e-6) * 0.05
        pos += take + RATE // 5
    nz = rain[0].astype(np.float32) / 32768
    nz = np.tile(nz, n // len(nz) + 1)[:n]
    nz *= train.active_rms(s[lead:], RATE) / train.rms(nz[lead:]) * 10 ** (-SNR / 20)
    x = s + nz
    x *= 10 ** (-3 / 20) / np.abs(x).max()
    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "x.wav")
        sf.write(wav, x, RATE, subtype="PCM_16")
        out = os.path.join(ROOT, "samples", "noisy-speech.ogg")
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={wav}", "!", "wavparse", "!",
                        "audioconvert", "!", "vorbisenc", "quality=0.6", "!", "oggmux", "!", "filesink",
                        f"location={out}"], check=True)
    print(out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
