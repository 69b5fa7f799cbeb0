#!/usr/bin/python3
"""Golden output of the inpainting task, computed in PyTorch from the specification in
engine/ge-inpaint.h (the regions of models/inpaint/regions.py: boxes around the mask's parts
with context, chamfer distances, hole = the mask, smootherstep blend; DDIM with x0
prediction as models/inpaint/train.py samples) with the engine's noise
(models/common/ge_rng.py), for tests/engine/test-inpaint.c.

    /usr/bin/python3 tests/golden/make_inpaint_golden.py

RePaint (unconditional U-Nets) follows diffusers' RePaintScheduler and RePaintPipeline (eta 0)
with the engine's noise draws.

Also writes tests/golden/inpaint/patchmatch.safetensors: the exemplar fill alone
(tests/golden/patchmatch_ref.py, numpy) on crops of samples/butterfly.png, cases pm1-pm3.

Writes tests/golden/inpaint/diffusioninpaint.safetensors with cases "a", "b" (the plain
conditional model, inpaint-x0.safetensors), "s" (the residual one, diffusioninpaint.safetensors,
whose base fill is models/inpaint/train.py's base_fill), "d" (the shipped
models/inpaint/diffusioninpaint.safetensors on case a's frame, with its exemplar guidance), "e"
(the residual test model with exemplar guidance 0.75) and "r" (RePaint with tests/elements/models/unconditional-ddpm.safetensors, 10 steps,
jump_length 3, jump_n_sample 2): <case>.img
(U8 [H, W, 3], an odd-sized crop of samples/butterfly.png), <case>.mask (U8 [H, W]: a box, a
diagonal stroke touching it corner to corner, and a blob near the bottom-right corner) and
<case>.out (U8 [H, W, 3]) for seed 7, feather 3, the model's default steps.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
import diffusers_torch as dt  # noqa: E402
import ge_rng  # noqa: E402
import st  # noqa: E402
import trainkit  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "models", "inpaint"))
import regions  # noqa: E402
import train as inpaint_train  # noqa: E402
sys.path.insert(0, HERE)
import patchmatch_ref  # noqa: E402

SEED, FEATHER = 7, 3


def load_unet(path):
    """-> (UNet2DModel in eval mode, its config, scheduler config, task or {})."""
    tensors, meta = st.load(path)
    cfg = json.loads(meta["config"])
    unet = dt.UNet2DModel(**{k: v for k, v in cfg.items() if not k.startswith("_")})
    unet.load_state_dict(tensors)
    unet.eval()
    return unet, cfg, json.loads(meta["scheduler"]), json.loads(meta.get("task", "{}"))


def box_noise(k, x0, y0, w, h):
    """Draw k of a box's noise, as the engine numbers it (engine/tasks/inpaint.c)."""
    out = np.empty((3, h, w), np.float32)
    for c in range(3):
        for y in range(h):
            out[c, y] = ge_rng.normal(SEED, (k << 40) | ((c << 16 | (y0 + y)) << 16) | x0, w)
    return torch.from_numpy(out)[None]


def boxes(img, mask, cfg):
    """For each box of regions.boxes_of: (box, chamfer distances, hole [1,1,h,w], the box's
    image in [-1, 1] [1,3,h,w], edge pixels replicated past the frame)."""
    H, W = mask.shape
    m = 2 ** (len(cfg["block_out_channels"]) - 1)
    for x0, y0, x1, y1 in regions.boxes_of(mask, m, FEATHER):
        ys, xs = np.minimum(np.arange(y0, y1), H - 1), np.minimum(np.arange(x0, x1), W - 1)
        inside = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        inside[:min(y1, H) - y0, :min(x1, W) - x0] = mask[y0:y1, x0:x1] != 0
        d = regions.chamfer(inside, FEATHER)
        hole = torch.from_numpy((d == 0).astype(np.float32))[None, None]
        crop = torch.from_numpy(img[ys][:, xs].astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
        yield (x0, y0, x1, y1), d, hole, crop


def blend(out, x, d, box):
    regions.blend_into(out, ((x[0] + 1.0) * 127.5).permute(1, 2, 0).numpy(), d, box, FEATHER)


def exemplar(img, box, d):
    """The box's exemplar fill (tests/golden/patchmatch_ref.py, hole = the mask) on its part
    inside the frame, edge pixels repeated past it, [1, 3, h, w] in [-1, 1]; None when no patch
    fits."""
    x0, y0, x1, y1 = box
    H, W = img.shape[:2]
    vw, vh = min(x1, W) - x0, min(y1, H) - y0
    filled = patchmatch_ref.patchmatch_fill(img[y0:y0 + vh, x0:x0 + vw], d[:vh, :vw] == 0, SEED, x0, y0)
    if filled is None:
        return None
    ys, xs = np.minimum(np.arange(y1 - y0), vh - 1), np.minimum(np.arange(x1 - x0), vw - 1)
    return torch.from_numpy(filled[ys][:, xs].astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


def gauss_blur(x, sigma):
    """Separable Gaussian blur of [1, C, h, w], zero outside, taps over [-3 sigma, 3 sigma]
    (radius int(3 sigma)) normalised to sum 1."""
    r = int(3.0 * sigma)
    j = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (j / sigma) ** 2)
    k = torch.from_numpy((k / k.sum()).astype(np.float32))
    c = x.shape[1]
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, r), groups=c)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(r, 0), groups=c)


def run(model_path, img, mask, guidance=None):
    """guidance: the exemplar guidance, None for the model's (its task's "exemplar_guidance")."""
    unet, cfg, sched, task = load_unet(model_path)
    steps = task["num_inference_steps"]
    g = task.get("exemplar_guidance", 0.0) if guidance is None else guidance
    residual = task.get("residual") == "base_fill"
    ac = trainkit.alphas_cumprod(sched)
    out = img.copy()
    for box, d, hole, crop in boxes(img, mask, cfg):
        x0, y0, x1, y1 = box
        x = box_noise(0, x0, y0, x1 - x0, y1 - y0)
        # models/inpaint/train.py's base_fill with the file's parameters
        cond = (inpaint_train.base_fill(crop, hole, **inpaint_train.base_params(task)) if residual
                else crop * (1 - hole))
        # the exemplar fill in the U-Net's sample space; each step's x0 is pulled towards it
        guide = exemplar(img, box, d) if g > 0 else None
        if guide is not None and residual:
            guide = (guide - cond) * task["residual_scale"]
            # the exemplar's structure above exemplar_sigma only in part (exemplar_low)
            low = task.get("exemplar_low", 1.0)
            if low < 1:
                guide = guide - (1 - low) * gauss_blur(guide, task.get("exemplar_sigma", 2.0))
        eta = task.get("eta", 0.0)
        # guidance 1 on a residual model: every estimate is the target, the U-Net is not run
        skip = guide is not None and residual and g >= 1
        if skip:
            x = guide
        with torch.no_grad():
            for i, t in enumerate([] if skip else trainkit.ddim_timesteps(sched, steps)):
                x0_hat = unet(torch.cat([x, hole, cond], 1), torch.tensor([t])).sample
                if guide is not None:
                    x0_hat = x0_hat + g * hole * (guide - x0_hat)
                # with eta > 0, draw i + 1 of the box's noise at step i (draw 0 is x_T)
                noise = box_noise(i + 1, x0, y0, x1 - x0, y1 - y0) if eta > 0 else None
                x = trainkit.ddim_step(sched, ac, x0_hat, t, steps, x, eta, noise)
        if residual:
            x = cond + hole * x / task["residual_scale"]
        blend(out, x, d, box)
    return out


def case(x0, y0, w, h):
    img = np.asarray(Image.open(os.path.join(ROOT, "samples", "butterfly.png")).convert("RGB"))
    img = np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])
    mask = np.zeros((h, w), np.uint8)
    mask[10:22, 12:30] = 255                   # a box
    for i in range(8):                         # a diagonal stroke from its corner
        mask[22 + i, 30 + i] = 200
    mask[h - 9:h - 3, w - 12:w - 4] = 1        # a blob near the corner
    return img, mask


def repaint_timesteps(n, jump_length, jump_n_sample, T):
    """diffusers RePaintScheduler.set_timesteps."""
    jumps = {j: jump_n_sample - 1 for j in range(0, n - jump_length, jump_length)}
    ts, t = [], n
    while t >= 1:
        t -= 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                ts.append(t)
    return [t * (T // n) for t in ts]


def run_repaint(model_path, img, mask, n, jump_length, jump_n_sample):
    """diffusers RePaintPipeline.__call__ / RePaintScheduler.step, undo_step (eta 0), with the
    engine's noise: draw 0 is x_T, then one draw per step and per undone train step."""
    unet, cfg, sched, _ = load_unet(model_path)
    T = sched["num_train_timesteps"]
    betas = torch.linspace(sched["beta_start"], sched["beta_end"], T, dtype=torch.float32)
    ac = torch.cumprod(1.0 - betas, dim=0)
    out = img.copy()
    for box, d, hole, orig in boxes(img, mask, cfg):
        x0, y0, x1, y1 = box
        keep = 1 - hole
        w, h = x1 - x0, y1 - y0
        x = box_noise(0, x0, y0, w, h)
        draw = 1
        timesteps = repaint_timesteps(n, jump_length, jump_n_sample, T)
        t_last = timesteps[0] + 1
        stride = T // n
        with torch.no_grad():
            for t in timesteps:
                if t < t_last:
                    eps = unet(x, torch.tensor([t])).sample
                    prev = t - stride
                    a_t = ac[t]
                    a_prev = ac[prev] if prev >= 0 else torch.tensor(1.0)
                    x0_hat = ((x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5).clamp(-1, 1)
                    noise = box_noise(draw, x0, y0, w, h)
                    draw += 1
                    unknown = a_prev ** 0.5 * x0_hat + (1 - a_prev) ** 0.5 * eps
                    known = a_t ** 0.5 * orig + (1 - a_t) ** 0.5 * noise
                    x = keep * known + (1 - keep) * unknown
                else:
                    for i in range(stride):
                        beta = betas[t_last + i]
                        x = (1 - beta) ** 0.5 * x + beta ** 0.5 * box_noise(draw, x0, y0, w, h)
                        draw += 1
                t_last = t
        blend(out, x, d, box)
    return out


def patchmatch_cases():
    """Cases of the exemplar fill alone: pmN.img (U8 [h, w, 3]), pmN.hole (U8 [h, w]),
    pmN.params (I64: seed, frame x0, frame y0, coarse_min_side), pmN.out."""
    img = np.asarray(Image.open(os.path.join(ROOT, "samples", "butterfly.png")).convert("RGB"))
    out = {}
    cases = {
        # two levels (coarse_min_side 16): a box and a stroke
        "pm1": ((60, 30, 64, 56), (7, 60, 30, 16), [(18, 20, 42, 40)], True),
        # the same with another seed
        "pm2": ((60, 30, 64, 56), (8, 60, 30, 16), [(18, 20, 42, 40)], True),
        # one level (the default 56), a hole on the image's right edge
        "pm3": ((100, 70, 44, 38), (7, 100, 70, 56), [(10, 30, 22, 44)], False),
    }
    for name, ((x0, y0, w, h), params, rects, stroke) in cases.items():
        crop = np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])
        hole = np.zeros((h, w), np.uint8)
        for ry0, rx0, ry1, rx1 in rects:
            hole[ry0:ry1, rx0:rx1] = 1
        if stroke:
            for i in range(10):
                hole[5 + i, 6 + i] = 1
        seed, fx0, fy0, min_side = params
        res = patchmatch_ref.patchmatch_fill(crop, hole > 0, seed, fx0, fy0, coarse_min_side=min_side)
        out.update({f"{name}.img": crop, f"{name}.hole": hole, f"{name}.out": res,
                    f"{name}.params": np.array(params, np.int64)})
        print(name, "filled", int(hole.sum()), "pixels; changed", int((res != crop).any(-1).sum()))
    # another seed, another fill
    assert (out["pm1.out"] != out["pm2.out"]).any()
    return out


def main():
    torch.set_num_threads(1)
    pm = patchmatch_cases()
    st.save(os.path.join(HERE, "inpaint", "patchmatch.safetensors"), pm,
            metadata={"reference": "tests/golden/patchmatch_ref.py"})
    model = os.path.join(ROOT, "tests", "elements", "models", "inpaint-x0.safetensors")
    tensors = {}
    # "a": 161 x 120, two boxes; "b": 91 x 67, the boxes merge into one that runs past the
    # frame's right and bottom edges (widened to the U-Net's multiple of 4)
    for name, (x0, y0, w, h) in (("a", (10, 8, 161, 120)), ("b", (40, 30, 91, 67))):
        img, mask = case(x0, y0, w, h)
        out = run(model, img, mask)
        tensors.update({f"{name}.img": img, f"{name}.mask": mask, f"{name}.out": out})
        print(name, "boxes", regions.boxes_of(mask, 4, FEATHER), "changed pixels", int((out != img).any(-1).sum()))
    # "s": the residual formulation (models/inpaint/train.py's), case a's frame and mask
    img, mask = case(10, 8, 161, 120)
    out = run(os.path.join(ROOT, "tests", "elements", "models", "diffusioninpaint.safetensors"), img, mask)
    tensors.update({"s.img": img, "s.mask": mask, "s.out": out})
    print("s changed pixels", int((out != img).any(-1).sum()))
    # "d": the shipped default model (4 levels, mid attention, 64 harmonic sweeps), same frame
    out = run(os.path.join(ROOT, "models", "inpaint", "diffusioninpaint.safetensors"), img, mask)
    tensors.update({"d.img": img, "d.mask": mask, "d.out": out})
    print("d changed pixels", int((out != img).any(-1).sum()))
    # "e": the residual test model with exemplar guidance 0.75, same frame
    out = run(os.path.join(ROOT, "tests", "elements", "models", "diffusioninpaint.safetensors"), img, mask,
              guidance=0.75)
    tensors.update({"e.img": img, "e.mask": mask, "e.out": out})
    print("e changed pixels", int((out != img).any(-1).sum()))
    # "r": RePaint with the unconditional model, 10 steps, jumps of 3 taken twice
    img, mask = case(40, 30, 91, 67)
    out = run_repaint(os.path.join(ROOT, "tests", "elements", "models", "unconditional-ddpm.safetensors"),
                      img, mask, 10, 3, 2)
    tensors.update({"r.img": img, "r.mask": mask, "r.out": out})
    print("r changed pixels", int((out != img).any(-1).sum()))
    os.makedirs(os.path.join(HERE, "inpaint"), exist_ok=True)
    st.save(os.path.join(HERE, "inpaint", "diffusioninpaint.safetensors"), tensors,
            metadata={"model": "tests/elements/models/diffusioninpaint.safetensors", "seed": str(SEED),
                      "feather": str(FEATHER), "torch": torch.__version__})


if __name__ == "__main__":
    main()
