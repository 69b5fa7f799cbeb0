#!/usr/bin/python3
"""Trains the gansynth speech enhancer (net.SpectralMaskGRU) adversarially on noisy mixtures of
the Debian speech and noise recordings (models/data/fetch_speech.py).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/gansynth/train.py --threads 2 [--steps N]

Mixtures, made on the fly from the TRAIN split (speakers and noise packages of the validation
split are never seen): 2 s at 16 kHz of clean speech (clips end to end with short gaps), with
reverberation (p 0.25, synthetic exponential room responses, RT60 0.15-0.8 s: the reverberant
speech is the target), band-limiting (p 0.15, 3.4-7 kHz, input and target alike), plus noise
from a training package (p 0.15 babble of 3-5 training speakers instead; with --synthetic-noise
p 0.25 a noise of random spectral shape instead; with --tonal-noise p 0.15 pitched sources
that are not speech instead; with --call-noise p 0.12 animal calls, bird chirps and whooshes
instead; p 0.1 a mains hum on top; with --speech-augment p 0.5 the speech played 0.85-1.15
times as fast through a random +-6 dB filter) at an SNR uniform in [-5, 20] dB, then
a level uniform in [-40, -6] dBFS peak.  5 % are speech only (target: itself).  No mixture is
noise alone: with losses scaled by the mixture's level those dominated the gradient and drove
every gain down; the starts and gaps of the speech segments hold the noise-only stretches.

Losses, on output and target scaled by the mixture's RMS: multi-resolution STFT (compressed
magnitude and complex spectra, FFT 256/512/1024), L1 on the waveform, -0.1 SI-SDR (dB), binary
cross-entropy of the voice activity head against the clean frame energy,
and after --adv-start steps least-squares GAN + feature matching with a MelGAN multi-scale
waveform discriminator (narrowed, on a random 0.5 s crop of each batch: on whole segments it
cost 8x the generator).  Validation every --val-every steps: SI-SDR improvement on fixed
mixtures of the VALIDATION speakers and noises at 0, 5 and 10 dB (with --ema, of the weights'
moving average, which best.pt then holds); best.pt keeps the best.
Checkpoints and logs go to --out (resumable: last.pt, which also holds its validation, so an
export of it records the numbers as an export of best.pt does).
"""

import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import scipy.fft
import scipy.signal
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import net  # noqa: E402
import st  # noqa: E402
import trainkit as tk  # noqa: E402

AUDIO = "_work/data/audio"
RATE = 16000


def validated_generator(ck):
    """The generator weights of checkpoint @ck that were validated: the average of a run with
    --ema (checkpoints hold the raw weights as "G" beside it; best.pt holds the average in both),
    else "G".  What export.py exports and --init goes on from."""
    return ck.get("G_ema", ck["G"])


def load_split(kind, split, rate=RATE, audio=AUDIO, names=False):
    """-> list of (group, int16 array) of every clip of @kind in @split (with names: (group,
    array, clip name))."""
    m = json.load(open(os.path.join(audio, "MANIFEST.json")))
    out = []
    for pkg, e in m.items():
        if e["kind"] != kind:
            continue
        rows = [r for r in e["clips"] if r["split"] == split]
        if not rows:
            continue
        data = np.load(os.path.join(audio, f"{pkg}.{rate}.npy"), mmap_mode="r")
        for r in rows:
            o, n = r[f"offset{rate}"], r[f"length{rate}"]
            clip = (pkg + "/" + r["group"], np.array(data[o:o + n]))
            out.append(clip + (r["name"],) if names else clip)
    return out


def rms(x):
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2) + 1e-12))


def active_rms(x, rate=RATE):
    """RMS over the 20 ms frames within 40 dB of the loudest (speech level without pauses)."""
    n = rate // 50
    f = x[:len(x) // n * n].reshape(-1, n).astype(np.float64)
    e = (f ** 2).mean(1)
    if e.size == 0 or e.max() <= 0:
        return 1e-6
    return float(np.sqrt(e[e > e.max() * 1e-4].mean()))


class Mixer:
    def __init__(self, speech, noise, rng, seconds=2.0, synthetic=False, augment=False, snr_power=1.0,
                 tonal=False, calls=False, speech_augment=False, max_lead=0.5):
        self.speech, self.noise, self.rng = speech, noise, rng
        self.synthetic, self.augment, self.snr_power, self.tonal = synthetic, augment, snr_power, tonal
        self.calls, self.speech_augment = calls, speech_augment
        self.max_lead = max(1, int(max_lead * RATE))    # integers(0, 1): no lead
        self.n = int(seconds * RATE)

    def speech_segment(self):
        if self.speech_augment and self.rng.random() < 0.5:
            # played 0.85-1.15 times as fast (pitch, formants and tempo: other voices) through
            # a random +-6 dB filter (another microphone; RNNoise filters its speech too): the
            # changed voice is the target
            n = scipy.fft.next_fast_len(int(self.n * 2 ** self.rng.uniform(np.log2(0.85), np.log2(1.15))))
            seg = self.speech_clips(n)
            # 5 ms fades: the FFT resampler wraps the end onto the start, which would ring
            ramp = np.sin(np.linspace(0, np.pi / 2, RATE // 200)) ** 2
            seg[:len(ramp)] *= ramp
            seg[-len(ramp):] *= ramp[::-1]
            return self.replayed(seg, 6)
        return self.speech_clips(self.n)

    def speech_clips(self, n):
        out = np.zeros(n, np.float32)
        pos = int(self.rng.integers(0, self.max_lead))     # noise alone before the voice
        while pos < n:
            _, c = self.speech[self.rng.integers(len(self.speech))]
            c = c.astype(np.float32) / 32768
            c = c / (active_rms(c) + 1e-6) * 0.05
            take = min(len(c), n - pos)
            start = int(self.rng.integers(0, len(c) - take + 1))
            out[pos:pos + take] = c[start:start + take]
            pos += take + int(self.rng.integers(0, RATE * 3 // 10))
        return out

    def random_eq(self, x, span_db, max_tilt_db=0.0):
        """x through a smooth random filter: an envelope over log-frequency (8 knots,
        +-span_db), tilted down by 0 to max_tilt_db per octave when that is given."""
        X = np.fft.rfft(x)
        f = np.maximum(np.fft.rfftfreq(len(x), 1 / RATE), 20.0)
        knots = np.linspace(np.log(20), np.log(RATE / 2), 8)
        env_db = np.interp(np.log(f), knots, self.rng.uniform(-span_db, span_db, 8))
        if max_tilt_db:
            env_db -= self.rng.uniform(0, max_tilt_db) * np.log2(f / 1000)
        return np.fft.irfft(X * 10 ** (env_db / 20), n=len(x))

    def replayed(self, x, span_db):
        """x resampled to the segment's length (played len(x) / n times as fast: pitch and tempo
        together) through a random +-span_db filter: another source or microphone of the kind."""
        return self.random_eq(scipy.signal.resample(x, self.n), span_db).astype(np.float32)

    def synthetic_noise(self):
        """Stationary-ish noise of a random spectral shape (a smooth random envelope over
        log-frequency, +-15 dB, on a random tilt from white to brown), slowly modulated: the
        training packages hold mostly music and effects, this covers the shapes between."""
        x = self.random_eq(self.rng.standard_normal(self.n), 15, max_tilt_db=6)   # 6 dB/oct: brown
        t = np.arange(self.n) / RATE
        am = 1 + self.rng.uniform(0, 0.8) * np.sin(2 * np.pi * self.rng.uniform(0.1, 4) * t + self.rng.uniform(0, 6))
        return (x * am).astype(np.float32)

    @staticmethod
    def partials(f, weights):
        """sum over k of weights[k - 1] sin(k phase), the phase following the instantaneous
        frequency @f (Hz per sample); each partial sounds only while below Nyquist."""
        phase = 2 * np.pi * np.cumsum(f) / RATE
        return sum(w * np.sin(k * phase) * (k * f < RATE / 2) for k, w in enumerate(weights, 1))

    def tonal_noise(self):
        """1-3 pitched sources that are not speech (sirens, alarms, whistles, birdsong, wails):
        a few partials on a fundamental of 200-4000 Hz that glides and wobbles, in bursts.  A
        mask network tells voice from noise largely by harmonicity, and the recorded training
        noises hold few such sounds outside music."""
        t = np.arange(self.n) / RATE
        out = np.zeros(self.n)
        for _ in range(int(self.rng.integers(1, 4))):
            f0 = np.exp(self.rng.uniform(np.log(200), np.log(4000)))
            glide = self.rng.uniform(-1, 1) * np.sin(2 * np.pi * self.rng.uniform(0.05, 3) * t + self.rng.uniform(0, 6))
            wobble = self.rng.uniform(0, 0.03) * np.sin(2 * np.pi * self.rng.uniform(3, 12) * t)
            f = f0 * 2 ** (self.rng.uniform(0, 1) * glide + wobble)        # up to an octave of glide
            tilt = self.rng.uniform(0, 12)                                   # dB per partial
            src = self.partials(f, [10 ** (-tilt * (k - 1) / 20)
                                    for k in range(1, int(self.rng.integers(1, 9)) + 1)])
            if self.rng.random() < 0.7:                                      # bursts, not a drone
                period = self.rng.uniform(0.15, 1.5)
                on = (t + self.rng.uniform(0, period)) % period < period * self.rng.uniform(0.2, 0.8)
                src = src * scipy.signal.lfilter([0.02], [1, -0.98], on.astype(float))
            out += src * self.rng.uniform(0.3, 1)
        return out.astype(np.float32)

    def shaped(self, x, gain):
        """x through a time-varying filter: its STFT (32 ms frames) times gain(f[:, None],
        t[None, :]) (Hz, s)."""
        f, t, X = scipy.signal.stft(x, RATE, nperseg=512)
        _, y = scipy.signal.istft(X * gain(f[:, None], t[None, :]), RATE, nperseg=512)
        return y[:self.n]

    def events(self, t, dur, gap):
        """Start times of events of @dur seconds that recur after gaps drawn from @gap."""
        starts, pos = [], self.rng.uniform(-dur, 0.5)
        while pos < t[-1]:
            starts.append(pos)
            pos += dur + self.rng.uniform(*gap)
        return starts

    def animal_call(self, t):
        """A voiced call that is not speech: a harmonic source (f0 150-1000 Hz, with breath)
        through 2-4 fixed resonances, as short falling barks or long howls and wails that rise
        and fall with vibrato.  Speech moves its resonances several times a second; a call
        holds them."""
        f0 = np.exp(self.rng.uniform(np.log(150), np.log(1000)))
        bark = self.rng.random() < 0.6
        dur = self.rng.uniform(0.06, 0.3) if bark else self.rng.uniform(0.6, 2.0)
        env, contour = np.zeros_like(t), np.zeros_like(t)
        rise = self.rng.uniform(-0.5, 0.3) if bark else self.rng.uniform(-0.3, 1.0)   # octaves
        for s0 in self.events(t, dur, (0.1, 0.8) if bark else (0.2, 1.0)):
            u = (t - s0) / dur
            on = (u >= 0) & (u < 1)
            env[on] = np.minimum(1, u[on] * dur / 0.01) * (1 - u[on]) ** (2 if bark else 0.3)
            contour[on] = rise * (u[on] if bark else np.sin(np.pi * u[on]))
        vib = 0 if bark else self.rng.uniform(0, 0.05) * np.sin(2 * np.pi * self.rng.uniform(4, 8) * t)
        f = f0 * 2 ** (contour + vib)
        p = self.rng.uniform(0.5, 1.5)
        src = self.partials(f, [k ** -p for k in range(1, int(RATE / 2 / f0) + 1)])
        src = src + self.rng.uniform(0, 0.5) * self.rng.standard_normal(len(t)) * rms(src)
        formants = [(np.exp(self.rng.uniform(np.log(300), np.log(4000))), self.rng.uniform(80, 400))
                    for _ in range(int(self.rng.integers(2, 5)))]
        return self.shaped(src * env, lambda fr, _t: 0.05 + sum(1 / (1 + ((fr - c) / b) ** 2) for c, b in formants))

    def bird_chirps(self, t):
        """Phrases of fast frequency sweeps (20-150 ms, 1.5-7 kHz, up to an octave each way)."""
        dur = self.rng.uniform(0.02, 0.15)
        f1 = np.exp(self.rng.uniform(np.log(1500), np.log(7000)))
        f2 = min(f1 * 2 ** self.rng.uniform(-1, 1), 7500)
        f, env = np.full_like(t, f1), np.zeros_like(t)
        phrase = self.rng.uniform(0.3, 1.5)
        for p0 in self.events(t, phrase, (0.2, 1.0)):
            for s0 in np.arange(p0, p0 + phrase, dur * self.rng.uniform(1.2, 3)):
                u = (t - s0) / dur
                on = (u >= 0) & (u < 1)
                f[on] = f1 * (f2 / f1) ** u[on]
                env[on] = np.sin(np.pi * u[on]) ** 2
        return env * self.partials(f, [1.0, self.rng.uniform(0, 0.3)])

    def whoosh(self, t):
        """Swishes (a blade, a sling, an arrow going by): noise in a band 0.3-1.5 octaves wide
        whose centre sweeps 1-3 octaves in 0.1-0.6 s, rising and falling in level."""
        dur = self.rng.uniform(0.1, 0.6)
        c1 = self.rng.uniform(np.log2(300), np.log2(5000))                  # octaves
        c2 = np.clip(c1 + self.rng.choice([-1, 1]) * self.rng.uniform(1, 3), np.log2(150), np.log2(7500))
        width = self.rng.uniform(0.3, 1.5)
        starts = np.array(self.events(t, dur, (0.1, 1.2)))

        def gain(fr, tt):
            k = np.searchsorted(starts, tt[0], side="right") - 1
            u = (tt[0] - starts[np.maximum(k, 0)]) / dur
            on = (k >= 0) & (u < 1)
            c = c1 + (c2 - c1) * np.clip(u, 0, 1)
            lvl = np.where(on, np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0)
            return lvl[None, :] * np.exp(-0.5 * ((np.log2(np.maximum(fr, 20)) - c[None, :]) / (width / 2)) ** 2)
        return self.shaped(self.rng.standard_normal(len(t)), gain)

    def call_noise(self):
        """1-2 sounds that a voice cue takes for a voice, yet are noise: animal calls, bird
        chirps, whooshes.  The recorded training noises are mostly music, weather and
        machines, and such sounds were where gansynth trailed RNNoise most on the bench's
        validation mixtures."""
        t = np.arange(self.n) / RATE
        out = np.zeros(self.n)
        for _ in range(int(self.rng.integers(1, 3))):
            src = (self.animal_call, self.bird_chirps, self.whoosh)[int(self.rng.integers(3))](t)
            out += src / (rms(src) + 1e-9) * self.rng.uniform(0.3, 1)
        return out.astype(np.float32)

    def noise_segment(self):
        r = self.rng.random()
        if r < 0.15:
            out = sum(self.speech_segment() for _ in range(int(self.rng.integers(3, 6))))
        elif r < 0.40 and self.synthetic:
            out = self.synthetic_noise()
        elif 0.40 <= r < 0.55 and self.tonal:
            out = self.tonal_noise()
        elif 0.55 <= r < 0.67 and self.calls:
            out = self.call_noise()
        else:
            _, c = self.noise[self.rng.integers(len(self.noise))]
            c = c.astype(np.float32) / 32768
            # augmented: played 0.7-1.4 times as fast (pitch and tempo, as another source of
            # the same kind would sound) through a random +-10 dB filter
            aug = self.augment and self.rng.random() < 0.5
            m = int(self.n * 2 ** self.rng.uniform(-0.5, 0.5)) if aug else self.n
            if len(c) < m:
                c = np.tile(c, m // len(c) + 1)
            start = int(self.rng.integers(0, len(c) - m + 1))
            out = c[start:start + m].copy()
            if aug:
                out = self.replayed(out, 10)
        if self.rng.random() < 0.1:
            t = np.arange(self.n) / RATE
            f0 = self.rng.choice([50.0, 60.0])
            hum = sum(self.rng.random() / k * np.sin(2 * np.pi * f0 * k * t + self.rng.random() * 6) for k in range(1, 8))
            out = out + hum.astype(np.float32) * rms(out) * self.rng.uniform(0.2, 2)
        return out

    def reverb(self, x):
        rt60 = self.rng.uniform(0.15, 0.8)
        L = int(RATE * min(rt60, 0.5))
        t = np.arange(L) / RATE
        h = self.rng.standard_normal(L) * np.exp(-6.9 * t / rt60)
        h[0] = 1.0 / self.rng.uniform(0.3, 1.0)
        h = h / np.sqrt((h ** 2).sum())
        return scipy.signal.fftconvolve(x, h)[:len(x)].astype(np.float32)

    def bandlimit(self, *xs):
        cut = self.rng.uniform(3400, 7000)
        out = []
        for x in xs:
            X = np.fft.rfft(x)
            X[int(cut / (RATE / 2) * len(X)):] = 0
            out.append(np.fft.irfft(X, n=len(x)).astype(np.float32))
        return out

    def pair(self, snr=None):
        s = self.speech_segment()
        if self.rng.random() < 0.25:
            s = self.reverb(s)
        nz = self.noise_segment()
        # -5 to 20 dB; a power above 1 draws the low SNRs more often (2: half below 1.25 dB)
        snr = -5 + 25 * self.rng.random() ** self.snr_power if snr is None else snr
        ns = rms(nz)
        if self.rng.random() < 0.05 or ns < 1e-7:
            nz[:] = 0
        else:
            nz *= active_rms(s) / ns * 10 ** (-snr / 20)
        x = s + nz
        if self.rng.random() < 0.15:
            x, s = self.bandlimit(x, s)
        peak = np.abs(x).max() + 1e-9
        g = 10 ** (self.rng.uniform(-40, -6) / 20) / peak
        return x * g, s * g

    def batch(self, b):
        xs, ss = zip(*(self.pair() for _ in range(b)))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ss))


def val_set(speech, noise, n_per_snr=16, seconds=4.0, seed=1234):
    """Fixed mixtures of the validation split at 0, 5 and 10 dB."""
    rng = np.random.default_rng(seed)
    mx = Mixer(speech, noise, rng, seconds)
    out = []
    for snr in (0, 5, 10):
        for _ in range(n_per_snr):
            s = mx.speech_segment()
            nz = mx.noise_segment()
            nz *= active_rms(s) / (rms(nz) + 1e-9) * 10 ** (-snr / 20)
            out.append((snr, torch.from_numpy(s + nz), torch.from_numpy(s)))
    return out


def si_sdr(est, ref):
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    a = (est * ref).sum(-1, keepdim=True) / ((ref ** 2).sum(-1, keepdim=True) + 1e-9)
    t = a * ref
    return 10 * torch.log10((t ** 2).sum(-1) / (((est - t) ** 2).sum(-1) + 1e-9) + 1e-9)


def delay(x, d):
    return F.pad(x, (d, 0))[:, :x.shape[1]]


def mrstft_loss(y, s):
    """Multi-resolution STFT loss on power-law compressed spectra (magnitude and complex, as
    GTCRN and DeepFilterNet train): unlike a log-magnitude loss it stays bounded where the
    target is silent."""
    loss = 0.0
    for n in (256, 512, 1024):
        w = torch.hann_window(n)
        Y = torch.stft(y, n, n // 4, window=w, return_complex=True)
        S = torch.stft(s, n, n // 4, window=w, return_complex=True)
        ym, sm = (Y.abs() + 1e-8) ** 0.3, (S.abs() + 1e-8) ** 0.3
        loss = loss + F.mse_loss(ym, sm) + F.mse_loss(torch.view_as_real(Y / (Y.abs() + 1e-8) * ym),
                                                      torch.view_as_real(S / (S.abs() + 1e-8) * sm))
    return loss / 3


def vad_target(G, s, n_frames):
    """Clean frame energy within 35 dB of the segment's loudest frame and above -60 dBFS."""
    n, hop = G.frame_sizes(RATE)
    sp = F.pad(s, (n - hop, 0))
    e = sp.unfold(-1, n, hop).pow(2).mean(-1)[:, :n_frames]
    top = e.amax(1, keepdim=True)
    return ((e > top * 10 ** -3.5) & (e > 1e-6)).float()


@torch.no_grad()
def validate(model, vs):
    model.eval()
    n, hop = model.frame_sizes(RATE)
    res = {0: [], 5: [], 10: []}
    for snr, x, s in vs:
        y, _ = model(x[None])
        d = n - hop
        res[snr].append(float(si_sdr(y[:, d:], s[None, :-d]) - si_sdr(x[None, :-d], s[None, :-d])))
    model.train()
    return {k: float(np.mean(v)) for k, v in res.items()}


def refined(weights, bins):
    """@weights of a SpectralMaskGRU with other frames (bins of another spacing over 0-8 kHz)
    carried over to @bins bins: the input convolution's and the mask head's weights are
    interpolated along frequency, the convolution's scaled so that a spectrum that is the same
    at both spacings gives the same activations; the rest as they are.  A 20 ms model so starts
    a 40 ms one as nearly itself (its features now resolve a low voice's harmonics, which
    training then learns to use)."""
    b0 = weights["mask.bias"].shape[0]
    if b0 == bins:
        return weights
    pos = torch.arange(bins, dtype=torch.float64) * (b0 - 1) / (bins - 1)
    lo = pos.floor().long().clamp(max=b0 - 2)
    t = (pos - lo).float()

    def interp(w, dim):
        w = w.movedim(dim, -1)
        return (w[..., lo] * (1 - t) + w[..., lo + 1] * t).movedim(-1, dim)

    out = dict(weights)
    out["conv_in.weight"] = interp(weights["conv_in.weight"], 1) * ((b0 - 1) / (bins - 1))
    out["mask.weight"] = interp(weights["mask.weight"], 0)
    out["mask.bias"] = interp(weights["mask.bias"], 0)
    return out


def looked_ahead(weights, kernel):
    """@weights of a SpectralMaskGRU carried over to one whose input convolution has @kernel
    taps, the added ones being the newest (the frames a lookahead shows): zero, so that the
    network computes at frame t + lookahead what the old one did at frame t, and its gains land
    on the same frame (but for the GRU's start-up: it has run lookahead more steps, on the
    padding); training then learns what the frames ahead tell."""
    w = weights["conv_in.weight"]
    if w.shape[2] == kernel:
        return weights
    if w.shape[2] > kernel:
        raise SystemExit(f"cannot shorten the input convolution from {w.shape[2]} to {kernel} taps")
    return dict(weights, **{"conv_in.weight": F.pad(w, (0, kernel - w.shape[2]))})


def widened(weights, G):
    """@weights of a narrower SpectralMaskGRU embedded in @G (Net2Net-style widening): the old
    units keep their weights; the new units start from G's random initialisation, and every
    weight from a new unit into an old unit or an output is zero, so the widened network computes
    exactly what the narrow one did, while the new units' non-zero activations give those zero
    weights gradients from the first step.  At equal widths: @weights as they are.  A head that
    @weights lack (a deep filter added to a plain mask) keeps G's initialisation, zero."""
    out = {k: v.clone() for k, v in G.state_dict().items()}
    h0, H = weights["conv_in.bias"].shape[0], G.hidden
    if h0 > H:
        raise SystemExit(f"cannot widen hidden {h0} to {H}")
    for name, w in weights.items():
        dst = out[name]
        if name.startswith("gru."):
            # gates r, z, n stacked along dim 0, each [H, H]
            for g in range(3):
                rows = dst[g * H:(g + 1) * H]
                if w.dim() == 2:    # every GRU input is hidden-sized (conv_in or a layer below)
                    rows[:h0, :h0] = w[g * h0:(g + 1) * h0]
                    rows[:h0, h0:] = 0
                else:
                    rows[:h0] = w[g * h0:(g + 1) * h0]
        elif name == "conv_in.weight":      # (a deep filter's phase inputs stay at zero)
            dst[:h0, :w.shape[1]] = w
        elif name == "conv_in.bias":
            dst[:h0] = w
        else:                       # mask and vad heads: [outputs, hidden] and biases
            if w.dim() == 2:
                dst[:, :w.shape[1]] = w
                dst[:, w.shape[1]:] = 0
            else:
                dst.copy_(w)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="_work/gansynth")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--hidden", type=int, default=160)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--frame-ms", type=int, default=20,
                    help="analysis frame (a multiple of the 10 ms hop): 40 resolves the "
                    "harmonics of low voices, at 40 ms of latency")
    ap.add_argument("--lookahead", type=int, default=0,
                    help="hops the network sees beyond the frame it masks (each adds a hop, "
                    "10 ms, of latency); the input convolution gets as many more taps")
    ap.add_argument("--df-bins", type=int, default=0,
                    help="a deep filter (net.py) on this many of the lowest bins (0: none)")
    ap.add_argument("--df-taps", type=int, default=5,
                    help="the deep filter's frames: the lookahead's, the masked one and older")
    ap.add_argument("--phase-bins", type=int, default=None,
                    help="the lowest bins whose phase advance is an input (default --df-bins)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--adv-start", type=int, default=1500)
    ap.add_argument("--adv-weight", type=float, default=0.1)
    ap.add_argument("--adv-crop", type=int, default=8000)
    ap.add_argument("--sisdr-weight", type=float, default=0.1)
    ap.add_argument("--synthetic-noise", action="store_true",
                    help="a quarter of the noises synthetic (random spectral shapes)")
    ap.add_argument("--noise-augment", action="store_true",
                    help="half the recorded noises resampled 0.7-1.4x and randomly filtered")
    ap.add_argument("--tonal-noise", action="store_true",
                    help="15 %% of the noises pitched non-speech sources (sirens, whistles, birds)")
    ap.add_argument("--call-noise", action="store_true",
                    help="12 %% of the noises animal calls, bird chirps and whooshes")
    ap.add_argument("--speech-augment", action="store_true",
                    help="half the speech resampled 0.85-1.15x and randomly filtered")
    ap.add_argument("--max-lead", type=float, default=0.5,
                    help="the speech of a segment starts after 0 to this many seconds of noise alone")
    ap.add_argument("--snr-power", type=float, default=1.0,
                    help="SNRs drawn as -5 + 25 u^p dB (u uniform): 1 uniform over -5..20 dB, "
                    "above 1 more low SNRs")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="validate and keep an exponential moving average of the generator's "
                    "weights with this decay (0: the weights themselves)")
    ap.add_argument("--disc-channels", type=int, default=8)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="start from this checkpoint's generator and discriminator, or "
                    "from an exported .safetensors generator (fresh optimisers, step 0): "
                    "fine-tuning with other data or losses; with a --hidden larger than the "
                    "file's, its network is widened first (widened())")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    logf = os.path.join(args.out, "train.log")
    with open(os.path.join(args.out, "train.pid"), "w") as f:
        f.write(str(os.getpid()))

    speech, noise = load_split("speech", "train"), load_split("noise", "train")
    vs = val_set(load_split("speech", "val"), load_split("noise", "val"))
    tk.log(logf, f"train: {len(speech)} speech clips ({sum(len(c) for _, c in speech) / RATE / 3600:.2f} h, "
           f"{len({g for g, _ in speech})} voices), {len(noise)} noise clips "
           f"({sum(len(c) for _, c in noise) / RATE / 3600:.2f} h); val mixtures {len(vs)}")

    torch.manual_seed(args.seed)
    G = net.SpectralMaskGRU(args.hidden, args.layers, 3 + args.lookahead, args.frame_ms,
                            lookahead=args.lookahead, df_bins=args.df_bins, df_taps=args.df_taps,
                            phase_bins=args.phase_bins)
    with torch.no_grad():
        G.mask.bias.fill_(2.0)          # start near the identity (gains 0.88), not at 0.5
    D = net.MultiScaleDiscriminator(ch=args.disc_channels)
    og = torch.optim.AdamW(G.parameters(), args.lr, betas=(0.8, 0.99))
    od = torch.optim.AdamW(D.parameters(), args.lr * 0.5, betas=(0.8, 0.99))
    step, best, ck = 0, -1e9, None
    last = os.path.join(args.out, "last.pt")
    if os.path.exists(last):
        ck = torch.load(last)
        G.load_state_dict(ck["G"]), D.load_state_dict(ck["D"])
        og.load_state_dict(ck["og"]), od.load_state_dict(ck["od"])
        step, best = ck["step"], ck["best"]
        tk.log(logf, f"resumed at step {step}")
    elif args.init and args.init.endswith(".safetensors"):
        # the exported model (what a fresh checkout has): the discriminator starts afresh
        weights, meta = st.load(args.init)
        G.load_state_dict(widened(looked_ahead(refined(weights, G.bins), G.kernel), G))
        tk.log(logf, f"initialised from {args.init} ({meta.get('training', 'no training record')}), "
               "new discriminator")
    elif args.init:
        ck = torch.load(args.init)
        G.load_state_dict(widened(looked_ahead(refined(validated_generator(ck), G.bins), G.kernel), G))
        D.load_state_dict(ck["D"])
        tk.log(logf, f"initialised from {args.init} (step {ck['step']}"
               f"{', EMA weights' if 'G_ema' in ck else ''})")
    # the average starts at the generator's starting weights (a resumed run's at its own)
    ema = copy.deepcopy(G) if args.ema else None
    if ema is not None and step and "G_ema" in ck:
        ema.load_state_dict(ck["G_ema"])
    mixer = Mixer(speech, noise, np.random.default_rng(args.seed + step), args.seconds, args.synthetic_noise,
                  args.noise_augment, args.snr_power, args.tonal_noise, args.call_noise,
                  args.speech_augment, args.max_lead)
    tk.log(logf, f"generator {sum(p.numel() for p in G.parameters())} parameters, "
           f"discriminator {sum(p.numel() for p in D.parameters())}")
    n, hop = G.frame_sizes(RATE)
    meter = tk.Meter()
    args.warmup, args.total_steps, args.lr_min = 200, args.steps, args.lr * 0.05
    while step < args.steps:
        t0 = time.time()
        lr = tk.lr_at(step, args)
        for o, scale in ((og, 1.0), (od, 0.5)):
            for gr in o.param_groups:
                gr["lr"] = lr * scale
        x, s = mixer.batch(args.batch)
        y, vad = G(x)
        s = delay(s, n - hop)
        adv = step >= args.adv_start
        # every mixture counts alike whatever its level: both scaled by the input's RMS
        scale = 1.0 / (x.pow(2).mean(1, keepdim=True).sqrt() + 1e-5)
        ys, ss = y * scale, s * scale
        # SI-SDR is what the mask trades: noise removed against speech distorted
        loss = 10.0 * mrstft_loss(ys, ss) + (ys - ss).abs().mean() - args.sisdr_weight * si_sdr(ys, ss).mean()
        loss = loss + 0.05 * F.binary_cross_entropy(vad.clamp(1e-5, 1 - 1e-5), vad_target(G, s, vad.shape[1]))
        if adv:
            # on a random crop (the discriminator costs more than the generator on whole
            # segments); real = clean, fake = enhanced, least squares
            o = int(np.random.randint(0, s.shape[1] - args.adv_crop + 1))
            sc, yc = ss[:, o:o + args.adv_crop], ys[:, o:o + args.adv_crop]
            real = D(sc)
            ld = 0.0
            for (dr, _), (df, _) in zip(real, D(yc.detach())):
                ld = ld + ((dr - 1) ** 2).mean() + (df ** 2).mean()
            od.zero_grad(set_to_none=True)
            ld.backward()
            od.step()
            lg, fm = 0.0, 0.0
            for (df, ff), (_, fr) in zip(D(yc), real):
                lg = lg + ((df - 1) ** 2).mean()
                fm = fm + sum((a - b.detach()).abs().mean() for a, b in zip(ff, fr)) / len(ff)
            loss = loss + args.adv_weight * (lg + 2.0 * fm)
        og.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(G.parameters(), 5.0)
        og.step()
        if ema is not None:
            tk.ema_update(ema, G, args.ema)
        step += 1
        meter.step(loss.item(), t0)
        if step % 25 == 0:
            tk.log(logf, meter.line(step, lr) + (" adv" if adv else ""))
        if step % args.val_every == 0 or step == args.steps:
            kept = ema if ema is not None else G     # what is validated, saved as best and exported
            v = validate(kept, vs)
            mean = float(np.mean(list(v.values())))
            tk.log(logf, f"val step {step} SI-SDRi 0dB {v[0]:.2f} 5dB {v[5]:.2f} 10dB {v[10]:.2f} mean {mean:.2f}")
            state = dict(G=G.state_dict(), D=D.state_dict(), og=og.state_dict(), od=od.state_dict(),
                         best=max(best, mean), val=v, config=G.config(), args=vars(args))
            if ema is not None:
                state["G_ema"] = ema.state_dict()
            if mean > best:
                best = mean
                tk.save_atomic(dict(state, G=kept.state_dict(), step=step), os.path.join(args.out, "best.pt"))
            tk.checkpoint(last, step, 1000, **state)
            meter.restart_clock()


if __name__ == "__main__":
    main()
