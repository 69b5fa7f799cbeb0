"""The gansynth speech enhancer as PyTorch modules, the reference that the engine
(engine/tasks/speech_enhance.c) follows operation for operation, and its discriminators.

Generator ("SpectralMaskGRU"): a causal mask network on the short-time spectrum.
  analysis   sqrt-Hann frames of frame_ms every hop_ms (frame_ms a multiple of hop_ms, at least
             two hops; 20 / 10 ms is 320/160 samples at 16 kHz, 960/480 at 48 kHz): both rates
             give bins every 1000 / frame_ms Hz, so the network sees the same bins of 0-8 kHz
             at either rate (161 at 20 ms, 321 at 40 ms).  The spectrum is divided by the
             window's sum, which makes a bin's expected power the same at both rates for the
             same sound.
  features   (log (|X|^2 + eps) - mean) / std of the bins of 0-8 kHz, with fixed mean and std
  network    causal Conv1d over the last `kernel` frames -> ReLU -> GRU x layers ->
             Linear -> sigmoid: a gain in [0, 1] per bin; a second Linear -> sigmoid: voice
             activity of the frame
  synthesis  Y = gain * X; above 8 kHz (48 kHz only) every bin takes the band gain of
             6-8 kHz (energy-weighted: sqrt (sum g^2 (|X|^2 + eps) / sum (|X|^2 + eps))), since the noisy
             spectrum above 8 kHz has nothing the network saw; then the strength blends
             every gain towards 1; inverse FFT, sqrt-Hann,
             overlap-add scaled by 2 hop / frame.  With all gains 1 the output is the input
             delayed by one frame minus one hop: the two windows' product (a periodic Hann)
             overlap-adds to frame / (2 hop).
  lookahead  the gains applied to frame t are the network's output at frame t + lookahead: the
             network itself stays causal, it has just seen `lookahead` more hops of input
             (0 or more; the algorithmic latency grows by as many hops).
  deep filter  (df_bins > 0, as DeepFilterNet's) a third Linear -> tanh gives complex
             coefficients C_j, j = 0 .. df_taps - 1, for the lowest df_bins bins, and there
             Y(t) = gain * X(t) + sum_j C_j * X(t + lookahead - j): a short filter along time per
             bin over frames the network has seen (no added latency).  A 50 Hz bin holds a
             voice's harmonic and a whistle's side by side; a filter over five 10 ms hops tells
             them apart by how their phases turn, which the log powers do not show: the
             network's input then also has, for those bins, the phase advance since the frame
             before (X(t) conj X(t-1) / sqrt((|X(t)|^2 + eps) (|X(t-1)|^2 + eps)), turned back by
             a bin centre's advance of 2 pi k hop / frame: cos and sin, a tone's offset from the
             bin's centre).  The head and those inputs' weights start at zero: the plain mask.
  phase inputs  those phase advances for the lowest phase_bins bins (default df_bins): a model
             may have them without the deep filter.
  latency    one frame (a hop to fill plus the frame - hop overlap delay) plus the lookahead
             hops.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BAND_HZ = 8000      # the network's band: 0..8 kHz (the 16 kHz path's Nyquist)
HIGH_BAND_FROM_HZ = 6000
EPS = 1e-12
# log-power features are standardised with these constants (the mean and deviation of
# log (|X|^2 + EPS) over training mixtures): unscaled, they saturate the GRU's gates at init
FEAT_MEAN, FEAT_STD = -21.0, 4.6


def sqrt_hann(n):
    # periodic Hann: hann[i] + hann[i + n/2] == 1, so analysis * synthesis overlap-adds to a
    # constant at any whole number of hops per frame (1 at two, istft scales the others)
    return torch.sqrt(0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(n, dtype=torch.float64) / n)).float()


class SpectralMaskGRU(nn.Module):
    def __init__(self, hidden=160, layers=2, kernel=3, frame_ms=20, hop_ms=10, lookahead=0,
                 df_bins=0, df_taps=0, phase_bins=None):
        super().__init__()
        assert frame_ms % hop_ms == 0 and frame_ms >= 2 * hop_ms and lookahead >= 0
        assert df_bins == 0 or df_taps > 0
        self.hidden, self.layers, self.kernel = hidden, layers, kernel
        self.frame_ms, self.hop_ms, self.lookahead = frame_ms, hop_ms, lookahead
        self.bins = BAND_HZ * frame_ms // 1000 + 1
        self.phase_bins = df_bins if phase_bins is None else phase_bins
        assert 0 <= self.phase_bins <= self.bins
        self.conv_in = nn.Conv1d(self.bins + 2 * self.phase_bins, hidden, kernel)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True)
        self.mask = nn.Linear(hidden, self.bins)
        self.vad = nn.Linear(hidden, 1)
        self.df_bins, self.df_taps = df_bins, df_taps if df_bins else 0
        if df_bins:
            assert df_bins <= self.bins
            self.df = nn.Linear(hidden, df_taps * df_bins * 2)     # [taps][bins][re, im]
            nn.init.zeros_(self.df.weight), nn.init.zeros_(self.df.bias)
        with torch.no_grad():
            self.conv_in.weight[:, self.bins:] = 0

    @classmethod
    def from_config(cls, cfg, **override):
        """The network a file's or checkpoint's config describes (keys as config() writes
        them; files from before the lookahead, the deep filter or the phase inputs lack theirs)."""
        kw = dict(hidden=cfg["hidden"], layers=cfg["gru_layers"], kernel=cfg["conv_kernel"],
                  frame_ms=cfg["frame_ms"], hop_ms=cfg["hop_ms"], lookahead=cfg.get("lookahead_frames", 0),
                  df_bins=cfg.get("df_bins", 0), df_taps=cfg.get("df_taps", 0), phase_bins=cfg.get("phase_bins"))
        kw.update(override)
        return cls(**kw)

    def frame_sizes(self, rate):
        return rate * self.frame_ms // 1000, rate * self.hop_ms // 1000

    def config(self):
        cfg = {"hidden": self.hidden, "gru_layers": self.layers, "conv_kernel": self.kernel,
               "bins": self.bins, "frame_ms": self.frame_ms, "hop_ms": self.hop_ms,
               "lookahead_frames": self.lookahead,
               "df_bins": self.df_bins, "df_taps": self.df_taps,
               "sample_rates": [16000, 48000],
               "high_band_from_hz": HIGH_BAND_FROM_HZ, "feature_eps": EPS,
               "feature_mean": FEAT_MEAN, "feature_std": FEAT_STD}
        if self.phase_bins != self.df_bins:     # else the readers' default: files stay as they were
            cfg["phase_bins"] = self.phase_bins
        return cfg

    def stft(self, x, rate):
        """x [B, T] -> complex [B, F, frames] (frames with a full window), scaled by 1/sum(w)."""
        n, hop = self.frame_sizes(rate)
        w = sqrt_hann(n).to(x.device)
        fr = x.unfold(-1, n, hop) * w                     # [B, frames, n]
        return (torch.fft.rfft(fr, dim=-1) / w.sum()).transpose(1, 2)

    def istft(self, spec, rate, length):
        n, hop = self.frame_sizes(rate)
        w = sqrt_hann(n).to(spec.device)
        fr = torch.fft.irfft(spec.transpose(1, 2) * w.sum(), n=n, dim=-1) * w   # [B, frames, n]
        fr = fr * (2 * hop / n)         # the windows' product overlap-adds to n / (2 hop)
        frames = fr.shape[1]
        y = F.fold(fr.transpose(1, 2), output_size=(1, (frames - 1) * hop + n), kernel_size=(1, n),
                   stride=(1, hop))
        y = y.reshape(fr.shape[0], -1)
        return F.pad(y, (0, max(0, length - y.shape[1])))[:, :length]

    def gains(self, spec):
        """spec [B, F>=bins, frames] -> (gain [B, bins, frames], vad [B, frames], deep-filter
        coefficients complex [B, taps, df_bins, frames] or None)."""
        feat = (torch.log(spec[:, :self.bins].abs() ** 2 + EPS) - FEAT_MEAN) / FEAT_STD
        if self.phase_bins:
            feat = torch.cat([feat, self.phase_advance(spec)], 1)
        h = F.relu(self.conv_in(F.pad(feat, (self.kernel - 1, 0))))
        h, _ = self.gru(h.transpose(1, 2))
        c = None
        if self.df_bins:
            c = torch.tanh(self.df(h)).view(h.shape[0], h.shape[1], self.df_taps, self.df_bins, 2)
            c = torch.view_as_complex(c.permute(0, 2, 3, 1, 4).contiguous())
        return torch.sigmoid(self.mask(h)).transpose(1, 2), torch.sigmoid(self.vad(h)).squeeze(-1), c

    def phase_advance(self, spec):
        """spec [B, F, frames] -> [B, 2 phase_bins, frames]: cos and sin of each of the lowest
        phase_bins bins' phase advance since the frame before, less the bin centre's (zero where
        a frame is silent; the frame before the first is)."""
        x = spec[:, :self.phase_bins]
        prev = F.pad(x, (1, 0))[:, :, :-1]
        d = x * prev.conj() / torch.sqrt((x.abs() ** 2 + EPS) * (prev.abs() ** 2 + EPS))
        k = torch.arange(self.phase_bins, dtype=torch.float64)
        centre = torch.polar(torch.ones_like(k), -2 * math.pi * k * self.hop_ms / self.frame_ms)
        d = d * centre.to(d.dtype)[:, None]
        return torch.cat([d.real, d.imag], 1)

    def deep_filter(self, spec, c):
        """sum_j c[:, j] * spec[:, :df_bins] j frames older, for the network's frames from
        lookahead on (the frames before the first are silent)."""
        taps, frames = self.df_taps, spec.shape[2]
        x = F.pad(spec[:, :self.df_bins], (taps - 1, 0))
        ahead = self.lookahead
        return sum(c[:, j, :, ahead:] * x[:, :, taps - 1 - j + ahead:taps - 1 - j + frames]
                   for j in range(taps))

    def forward(self, x, rate=16000, strength=1.0):
        """x [B, T] -> (enhanced [B, T], vad [B, frames]).  Output sample i is input sample
        i - (frame - hop) when the gains are 1, the first frame - hop output samples being the
        overlap-add's start-up.  (A stream, which cannot see ahead, outputs each sample
        lookahead hops later; past the end of @x the network sees silence, as a stream that is
        drained with zeros does.)"""
        n, hop = self.frame_sizes(rate)
        bins, ahead = self.bins, self.lookahead
        T = x.shape[1]
        xp = F.pad(x, (n - hop, ahead * hop))             # streaming: frames end at hops
        spec = self.stft(xp, rate)
        g, vad, c = self.gains(spec)
        dfy = self.deep_filter(spec, c) if c is not None else None
        g, vad = g[:, :, ahead:], vad[:, ahead:]
        spec = spec[:, :, :spec.shape[2] - ahead]
        if spec.shape[1] > bins:
            lo = HIGH_BAND_FROM_HZ * n // rate
            p = spec[:, lo:bins].abs() ** 2 + EPS
            ghb = torch.sqrt((g[:, lo:bins] ** 2 * p).sum(1, keepdim=True) / p.sum(1, keepdim=True))
            g = torch.cat([g, ghb.expand(-1, spec.shape[1] - bins, -1)], 1)
        g = 1 - strength * (1 - g)
        out = spec * g
        if dfy is not None:
            out = torch.cat([out[:, :self.df_bins] + strength * dfy, out[:, self.df_bins:]], 1)
        y = self.istft(out, rate, T + n - hop)
        return y[:, :T], vad


class ScaleDiscriminator(nn.Module):
    """MelGAN's waveform discriminator, narrower (grouped strided convolutions)."""

    def __init__(self, ch=16):
        super().__init__()
        c = [ch, ch * 4, ch * 16, ch * 16]
        self.layers = nn.ModuleList([
            nn.Conv1d(1, c[0], 15, padding=7),
            nn.Conv1d(c[0], c[1], 41, stride=4, padding=20, groups=4),
            nn.Conv1d(c[1], c[2], 41, stride=4, padding=20, groups=16),
            nn.Conv1d(c[2], c[3], 41, stride=4, padding=20, groups=16),
            nn.Conv1d(c[3], c[3], 5, padding=2),
        ])
        self.out = nn.Conv1d(c[3], 1, 3, padding=1)

    def forward(self, x):
        feats = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, scales=3, ch=16):
        super().__init__()
        self.ds = nn.ModuleList([ScaleDiscriminator(ch) for _ in range(scales)])

    def forward(self, x):
        outs = []
        x = x.unsqueeze(1)
        for i, d in enumerate(self.ds):
            if i:
                x = F.avg_pool1d(x, 4, 2, padding=1, count_include_pad=False)
            outs.append(d(x))
        return outs
