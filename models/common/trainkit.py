"""What the trainers share (models/sr, inpaint, vae and img2img train.py): the photos and their
patches (at native size, or zoomed out as whole photos are seen), diffusers' DDIMScheduler (prediction_type "sample", eta 0) as a config and
its two formulas, the learning-rate schedule, FLOP counting, logging and atomic checkpoints."""

import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import diffusers_torch as dt

MANIFEST = "_work/data/photos/MANIFEST.json"


def load_photos(split, manifest=MANIFEST, small=False):
    """-> list of (name, uint8 tensor [3, H, W]) of one split (with the small photos if asked)."""
    from PIL import Image
    with open(manifest) as f:
        m = json.load(f)
    base = os.path.dirname(manifest)
    out = []
    for e in m["photos"]:
        if e["split"] != split or (e.get("small") and not small):
            continue
        img = np.asarray(Image.open(os.path.join(base, e["file"])).convert("RGB"))
        out.append((e["file"], torch.from_numpy(img.copy()).permute(2, 0, 1).contiguous()))
    return out


class PatchSampler:
    """Random HR patches (uint8 photos in memory) with flips / rot90, as float [0,1]."""

    def __init__(self, photos, patch, seed):
        self.photos = [p for _, p in photos if min(p.shape[1:]) >= patch]
        self.patch = patch
        self.g = torch.Generator().manual_seed(seed)

    def batch(self, n):
        P = self.patch
        out = torch.empty(n, 3, P, P)
        for i in range(n):
            img = self.photos[int(torch.randint(len(self.photos), (1,), generator=self.g))]
            _, H, W = img.shape
            y = int(torch.randint(H - P + 1, (1,), generator=self.g))
            x = int(torch.randint(W - P + 1, (1,), generator=self.g))
            p = img[:, y:y + P, x:x + P].float() / 255.0
            a = int(torch.randint(8, (1,), generator=self.g))
            if a & 1:
                p = p.flip(2)
            if a & 2:
                p = p.flip(1)
            if a & 4:
                p = p.transpose(1, 2)
            out[i] = p
        return out


class ZoomPatchSampler:
    """Random patches [0,1] from uint8 images (any channel count), each area-downscaled from a
    region s times larger (s uniform in [1, max_zoom_out], capped by the image's size), with
    flips and transposes."""

    def __init__(self, photos, patch, max_zoom_out, seed):
        self.photos = [p for _, p in photos if min(p.shape[1:]) >= patch]
        self.patch, self.zmax = patch, max_zoom_out
        self.g = torch.Generator().manual_seed(seed)

    def _rand(self, n):
        return int(torch.randint(n, (1,), generator=self.g))

    def batch(self, n):
        P = self.patch
        out = torch.empty(n, self.photos[0].shape[0], P, P)
        for i in range(n):
            img = self.photos[self._rand(len(self.photos))]
            _, H, W = img.shape
            s = 1.0 + float(torch.rand(1, generator=self.g)) * (self.zmax - 1.0)
            R = max(P, min(int(round(P * s)), H, W))
            y, x = self._rand(H - R + 1), self._rand(W - R + 1)
            p = img[:, y:y + R, x:x + R].float().unsqueeze(0) / 255.0
            if R != P:
                p = F.interpolate(p, size=(P, P), mode="area")
            p = p[0]
            a = self._rand(8)
            if a & 1:
                p = p.flip(2)
            if a & 2:
                p = p.flip(1)
            if a & 4:
                p = p.transpose(1, 2)
            out[i] = p
        return out


def val_crops(photos, size, per_image=2):
    """Fixed validation HR crops (deterministic positions): centre and top-left-third."""
    crops = []
    for _, img in photos:
        _, H, W = img.shape
        if min(H, W) < size:
            continue
        pos = [((H - size) // 2, (W - size) // 2), ((H - size) // 3, (W - size) // 3)][:per_image]
        for y, x in pos:
            crops.append(img[:, y:y + size, x:x + size].float() / 255.0)
    return torch.stack(crops)


def val_squares(photos, size):
    """Each image area-resized to a short side of @size, centre-cropped to size x size, rounded
    to 8 bits: whole photos as a frame shows them (the VAE and colorization validation)."""
    out = []
    for _, img in photos:
        _, H, W = img.shape
        k = size / min(H, W)
        h, w = max(size, round(H * k)), max(size, round(W * k))
        x = F.interpolate(img.float().unsqueeze(0) / 255.0, size=(h, w), mode="area")
        y0, x0 = (h - size) // 2, (w - size) // 2
        out.append(torch.round(x[0, :, y0:y0 + size, x0:x0 + size] * 255.0) / 255.0)
    return torch.stack(out)


def scheduler_config(beta_schedule="squaredcos_cap_v2"):
    return {
        "_class_name": "DDIMScheduler",
        "_diffusers_version": dt.DIFFUSERS_VERSION,
        "num_train_timesteps": 1000,
        "beta_start": 0.0001,
        "beta_end": 0.02,
        "beta_schedule": beta_schedule,
        "clip_sample": False,
        "clip_sample_range": 1.0,
        "set_alpha_to_one": True,
        "steps_offset": 0,
        "prediction_type": "sample",
        "thresholding": False,
        "dynamic_thresholding_ratio": 0.995,
        "sample_max_value": 1.0,
        "timestep_spacing": "trailing",
        "rescale_betas_zero_snr": False,
    }


def alphas_cumprod(cfg):
    T = cfg["num_train_timesteps"]
    if cfg["beta_schedule"] == "linear":
        betas = torch.linspace(cfg["beta_start"], cfg["beta_end"], T, dtype=torch.float32)
    elif cfg["beta_schedule"] == "squaredcos_cap_v2":
        def ab(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.tensor([min(1 - ab((i + 1) / T) / ab(i / T), 0.999) for i in range(T)], dtype=torch.float32)
    else:
        raise ValueError(cfg["beta_schedule"])
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_timesteps(cfg, n):
    """diffusers DDIMScheduler.set_timesteps with timestep_spacing 'trailing'."""
    T = cfg["num_train_timesteps"]
    ts = np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
    return [int(t) for t in ts]


def ddim_step(cfg, ac, x0, t, n, sample, eta=0.0, noise=None):
    """One DDIM step with an x0 prediction; returns the previous sample.  With eta > 0, @noise
    (standard normals of sample's shape) enters as in diffusers' DDIMScheduler.step: std =
    eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)), the direction term shrunk to
    sqrt(1 - a_prev - std^2)."""
    prev = t - cfg["num_train_timesteps"] // n
    a_t = ac[t]
    a_prev = ac[prev] if prev >= 0 else (torch.tensor(1.0) if cfg["set_alpha_to_one"] else ac[0])
    eps = (sample - a_t.sqrt() * x0) / (1 - a_t).sqrt()
    if eta == 0:
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    std = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev - std ** 2).sqrt() * eps + std * noise


@torch.no_grad()
def sampler_input(predict_x0, cfg, ac, shape, n, i, generator):
    """What a DDIM sampler of @n steps (eta 0, from fresh noise) feeds the network at its step
    @i >= 1, with @predict_x0(x_t, t) as its x0 estimates; -> (x_t, t).  Training on it
    (--trajectory in the training scripts) teaches later steps to correct the earlier
    estimates instead of taking their input for a noised true image (exposure bias)."""
    grid = ddim_timesteps(cfg, n)
    x = torch.randn(shape, generator=generator)
    for t in grid[:i]:
        x = ddim_step(cfg, ac, predict_x0(x, t), t, n, x)
    return x, grid[i]


def add_prior_steps_argument(ap):
    """export.py's --prior-steps (see exported_steps)."""
    ap.add_argument("--prior-steps", type=int, default=None,
                    help="steps of the model a --init run started from, counted in training_step "
                         "(default: what the checkpoint recorded, 0 for a fresh run)")


def exported_steps(ckpt, prior_steps=None):
    """Training steps behind a checkpoint: its own plus those of the file a --init run started
    from, as the run recorded them (ckpt["prior_steps"]) unless @prior_steps is given."""
    return ckpt["step"] + (ckpt.get("prior_steps", 0) if prior_steps is None else prior_steps)


def count_flops(model, inp, t):
    """Multiply-adds x 2 of the convolutions and linear layers (+ GroupNorm/SiLU elementwise)."""
    total = [0]

    def conv_hook(m, i, o):
        total[0] += 2 * o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m, i, o):
        total[0] += 2 * o.numel() * m.in_features

    def ew_hook(m, i, o):
        total[0] += 5 * o.numel()

    hs = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hs.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hs.append(m.register_forward_hook(lin_hook))
        elif isinstance(m, (torch.nn.GroupNorm, torch.nn.SiLU)):
            hs.append(m.register_forward_hook(ew_hook))
    with torch.no_grad():
        model(inp, t)
    for h in hs:
        h.remove()
    return total[0]


def log(path, msg):
    line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
    print(line, flush=True)
    with open(path, "a") as f:
        f.write(line + "\n")


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = min(1.0, (step - args.warmup) / max(1, args.total_steps - args.warmup))
    return args.lr_min + (args.lr - args.lr_min) * 0.5 * (1 + math.cos(math.pi * p))


def optimize(unet, ema, opt, loss, step, ema_decay):
    """One Adam step on @loss (gradients clipped to norm 1) and the EMA update (none when @ema
    is None), whose decay ramps up as min(ema_decay, (1 + step) / (10 + step))."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
    opt.step()
    if ema is not None:
        ema_update(ema, unet, min(ema_decay, (1 + step) / (10 + step)))


@torch.no_grad()
def ema_update(ema, model, decay):
    """@ema's weights <- decay * @ema's + (1 - decay) * @model's."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)


def checkpoint(path, step, keep_every, **state):
    """Saves {step, **state} to @path atomically; every @keep_every steps a copy ckpt-NNNNNN.pt
    stays next to it."""
    import shutil
    save_atomic(dict(state, step=step), path)
    if step % keep_every == 0:
        shutil.copyfile(path, os.path.join(os.path.dirname(path), f"ckpt-{step:06d}.pt"))


class Meter:
    """Loss and speed between log lines; busy time excludes pauses (a step longer than 60 s
    counts 60: the process was stopped)."""

    def __init__(self):
        self.t_last, self.n, self.loss, self.busy = time.time(), 0, 0.0, 0.0

    def step(self, loss, t0):
        self.n += 1
        self.loss += float(loss)
        self.busy += min(time.time() - t0, 60.0)

    def line(self, step, lr):
        now = time.time()
        msg = (f"step {step} loss {self.loss / max(self.n, 1):.5f} lr {lr:.2e} "
               f"steps/s {self.n / max(now - self.t_last, 1e-9):.3f} busy_h {self.busy / 3600:.3f}")
        self.t_last, self.n, self.loss = now, 0, 0.0
        return msg

    def restart_clock(self):
        """After a pause that is not training (validation)."""
        self.t_last = time.time()
