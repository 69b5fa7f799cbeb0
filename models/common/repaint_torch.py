"""diffusers 0.35.2's pixel-space pipelines of an unconditional UNet2DModel, re-implemented in
PyTorch from diffusers' source (not imported from diffusers), with every random draw injected by
name so that a record can be replayed by another implementation:

  RePaintScheduler + RePaintPipeline.__call__      (schedulers/scheduling_repaint.py,
                                                   pipelines/deprecated/repaint/pipeline_repaint.py)
  DDIMScheduler (set_timesteps, add_noise, step)   (schedulers/scheduling_ddim.py), run as an SDEdit
                                                   prior: the img2img recipe (get_timesteps,
                                                   add_noise at the first timestep) with
                                                   DDIMPipeline's loop body

Every tensor operation is the one diffusers writes, in its order, on float32 tensors (or float64
samples for the spread runs: the scheduler's float32 tables then promote, as in diffusers).

Draws: `draw(name, shape)` returns a tensor of standard normals; the pipelines ask for
  "latents"            the initial noise (RePaint) / the noise of add_noise (SDEdit)
  "step{i}"            the noise of walk entry i's step (RePaint: always; DDIM: eta > 0)
  "undo{i}"            RePaint: undo_step of walk entry i, T // N draws stacked on a new axis 0
draw_from_generator(torch.Generator) draws them in diffusers' order from one generator, so a record
made with it is what diffusers computes with that generator.
"""

import math

import numpy as np
import torch


def betas_for_alpha_bar(num_diffusion_timesteps, max_beta=0.999):
    def alpha_bar_fn(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = []
    for i in range(num_diffusion_timesteps):
        t1 = i / num_diffusion_timesteps
        t2 = (i + 1) / num_diffusion_timesteps
        betas.append(min(1 - alpha_bar_fn(t2) / alpha_bar_fn(t1), max_beta))
    return torch.tensor(betas, dtype=torch.float32)


def make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule):
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=torch.float32) ** 2
    if beta_schedule == "squaredcos_cap_v2":
        return betas_for_alpha_bar(num_train_timesteps)
    raise NotImplementedError(beta_schedule)


def draw_from_generator(generator, dtype=torch.float32):
    """A draw function taking every draw from one torch.Generator, in the order asked."""
    def draw(name, shape):
        return torch.randn(shape, generator=generator, dtype=dtype)
    return draw


# ------------------------------------------------------------------------------------------------
# RePaint
# ------------------------------------------------------------------------------------------------


class RePaintScheduler:
    KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "eta", "trained_betas",
            "clip_sample")

    def __init__(self, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 eta=0.0, trained_betas=None, clip_sample=True):
        if trained_betas is not None:
            raise NotImplementedError("trained_betas")
        self.config = dict(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                           beta_schedule=beta_schedule, eta=eta, trained_betas=None, clip_sample=clip_sample)
        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0)
        self.num_inference_steps = None
        self.eta = eta

    @classmethod
    def from_config(cls, config):
        """Like diffusers' from_config: keys of other schedulers are ignored."""
        return cls(**{k: v for k, v in config.items() if k in cls.KEYS})

    def set_timesteps(self, num_inference_steps, jump_length=10, jump_n_sample=10):
        T = self.config["num_train_timesteps"]
        num_inference_steps = min(T, num_inference_steps)
        self.num_inference_steps = num_inference_steps
        timesteps = []
        jumps = {}
        for j in range(0, num_inference_steps - jump_length, jump_length):
            jumps[j] = jump_n_sample - 1
        t = num_inference_steps
        while t >= 1:
            t = t - 1
            timesteps.append(t)
            if jumps.get(t, 0) > 0:
                jumps[t] = jumps[t] - 1
                for _ in range(jump_length):
                    t = t + 1
                    timesteps.append(t)
        timesteps = np.array(timesteps) * (T // self.num_inference_steps)
        self.timesteps = torch.from_numpy(timesteps)

    def _get_variance(self, t):
        prev_timestep = t - self.config["num_train_timesteps"] // self.num_inference_steps
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        return (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)

    def step(self, model_output, timestep, sample, original_image, mask, noise):
        """Returns (prev_sample, pred_original_sample); @noise is the step's randn draw."""
        t = timestep
        prev_timestep = timestep - self.config["num_train_timesteps"] // self.num_inference_steps
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        pred_original_sample = (sample - beta_prod_t ** 0.5 * model_output) / alpha_prod_t ** 0.5
        if self.config["clip_sample"]:
            pred_original_sample = torch.clamp(pred_original_sample, -1, 1)
        std_dev_t = self.eta * self._get_variance(timestep) ** 0.5
        variance = 0
        if t > 0 and self.eta > 0:
            variance = std_dev_t * noise
        pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t ** 2) ** 0.5 * model_output
        prev_unknown_part = alpha_prod_t_prev ** 0.5 * pred_original_sample + pred_sample_direction + variance
        prev_known_part = (alpha_prod_t_prev ** 0.5) * original_image + ((1 - alpha_prod_t_prev) ** 0.5) * noise
        pred_prev_sample = mask * prev_known_part + (1.0 - mask) * prev_unknown_part
        return pred_prev_sample, pred_original_sample

    def undo_step(self, sample, timestep, noises):
        """@noises: the T // N draws, stacked on axis 0."""
        n = self.config["num_train_timesteps"] // self.num_inference_steps
        assert noises.shape[0] == n
        for i in range(n):
            beta = self.betas[timestep + i]
            sample = (1 - beta) ** 0.5 * sample + beta ** 0.5 * noises[i]
        return sample


def repaint_preprocess_image(image_u8_hwc):
    """_preprocess_image's PIL branch after the resize: uint8 [h, w, 3] -> [1, 3, h, w] in [-1, 1]."""
    image = np.array(image_u8_hwc[None, :]).astype(np.float32) / 255.0
    image = image.transpose(0, 3, 1, 2)
    image = 2.0 * image - 1.0
    return torch.from_numpy(image), torch.from_numpy(np.ascontiguousarray(
        (np.array(image_u8_hwc[None, :]).astype(np.float32) / 255.0).transpose(0, 3, 1, 2)))


def repaint_preprocess_mask(mask_u8_hw):
    """_preprocess_mask's PIL branch after convert("L") and the resize: uint8 [h, w] -> [1, h, w],
    1 = keep.  Also returns the L / 255 values before thresholding."""
    mask = mask_u8_hw[None, :]
    mask = mask.astype(np.float32) / 255.0
    soft = mask.copy()
    mask[mask < 0.5] = 0
    mask[mask >= 0.5] = 1
    return torch.from_numpy(mask), torch.from_numpy(soft)


def repaint_pipeline(unet, scheduler, original_image, mask_image, num_inference_steps=250, eta=0.0,
                     jump_length=10, jump_n_sample=10, draw=None, record=None, dtype=torch.float32):
    """RePaintPipeline.__call__ on preprocessed tensors (original_image [1, 3, h, w] in [-1, 1],
    mask_image [1, h, w] or [1, 1, h, w], 1 = keep).  @record(name, tensor) sees every
    intermediate.  Returns the sample before post-processing and the image in [0, 1] (NCHW)."""
    rec = record or (lambda name, value: None)
    original_image = original_image.to(dtype=dtype)
    mask_image = mask_image.to(dtype=dtype)
    image_shape = original_image.shape
    image = draw("latents", image_shape).to(dtype)
    rec("input.initial_noise", image)
    scheduler.set_timesteps(num_inference_steps, jump_length, jump_n_sample)
    scheduler.eta = eta
    rec("timesteps", scheduler.timesteps)
    n_undo = scheduler.config["num_train_timesteps"] // scheduler.num_inference_steps
    t_last = scheduler.timesteps[0] + 1
    for i, t in enumerate(scheduler.timesteps):
        if t < t_last:
            model_output = unet(image, t).sample
            noise = draw(f"step{i}", image_shape).to(dtype)
            image, x0 = scheduler.step(model_output, t, image, original_image, mask_image, noise)
            rec(f"step{i}.model_output", model_output)
            rec(f"step{i}.noise", noise)
            rec(f"step{i}.pred_original_sample", x0)
            rec(f"step{i}.sample", image)
        else:
            noises = draw(f"undo{i}", (n_undo,) + tuple(image_shape)).to(dtype)
            image = scheduler.undo_step(image, t_last, noises)
            rec(f"undo{i}.noise", noises)
            rec(f"undo{i}.sample", image)
        t_last = t
    sample = image
    image = (image / 2 + 0.5).clamp(0, 1)
    return sample, image


# ------------------------------------------------------------------------------------------------
# DDIM as an SDEdit prior
# ------------------------------------------------------------------------------------------------


class DDIMScheduler:
    """DDIMScheduler with epsilon prediction, "leading" spacing, no thresholding."""

    KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "clip_sample",
            "clip_sample_range", "set_alpha_to_one", "steps_offset", "prediction_type", "timestep_spacing")

    def __init__(self, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=True, steps_offset=0,
                 prediction_type="epsilon", timestep_spacing="leading"):
        assert prediction_type == "epsilon" and timestep_spacing == "leading"
        self.config = dict(num_train_timesteps=num_train_timesteps, clip_sample=clip_sample,
                           clip_sample_range=clip_sample_range, steps_offset=steps_offset)
        self.betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.order = 1

    @classmethod
    def from_config(cls, config):
        return cls(**{k: v for k, v in config.items() if k in cls.KEYS})

    def set_timesteps(self, num_inference_steps):
        self.num_inference_steps = num_inference_steps
        step_ratio = self.config["num_train_timesteps"] // self.num_inference_steps
        timesteps = (np.arange(0, num_inference_steps) * step_ratio).round()[::-1].copy().astype(np.int64)
        timesteps += self.config["steps_offset"]
        self.timesteps = torch.from_numpy(timesteps)

    def _get_variance(self, timestep, prev_timestep):
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        return (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)

    def add_noise(self, original_samples, noise, timesteps):
        alphas_cumprod = self.alphas_cumprod.to(dtype=original_samples.dtype)
        sqrt_alpha_prod = alphas_cumprod[timesteps] ** 0.5
        sqrt_alpha_prod = sqrt_alpha_prod.flatten()
        while len(sqrt_alpha_prod.shape) < len(original_samples.shape):
            sqrt_alpha_prod = sqrt_alpha_prod.unsqueeze(-1)
        sqrt_one_minus_alpha_prod = (1 - alphas_cumprod[timesteps]) ** 0.5
        sqrt_one_minus_alpha_prod = sqrt_one_minus_alpha_prod.flatten()
        while len(sqrt_one_minus_alpha_prod.shape) < len(original_samples.shape):
            sqrt_one_minus_alpha_prod = sqrt_one_minus_alpha_prod.unsqueeze(-1)
        return sqrt_alpha_prod * original_samples + sqrt_one_minus_alpha_prod * noise

    def step(self, model_output, timestep, sample, eta=0.0, variance_noise=None):
        prev_timestep = timestep - self.config["num_train_timesteps"] // self.num_inference_steps
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        pred_epsilon = model_output
        if self.config["clip_sample"]:
            r = self.config["clip_sample_range"]
            pred_original_sample = pred_original_sample.clamp(-r, r)
        variance = self._get_variance(timestep, prev_timestep)
        std_dev_t = eta * variance ** (0.5)
        pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t ** 2) ** (0.5) * pred_epsilon
        prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction
        if eta > 0:
            prev_sample = prev_sample + std_dev_t * variance_noise
        return prev_sample, pred_original_sample


def get_timesteps(scheduler, num_inference_steps, strength):
    """StableDiffusionImg2ImgPipeline.get_timesteps."""
    init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
    t_start = max(num_inference_steps - init_timestep, 0)
    timesteps = scheduler.timesteps[t_start * scheduler.order:]
    return timesteps, num_inference_steps - t_start, t_start


def sdedit_ddim(unet, scheduler, image_01, num_inference_steps=50, strength=0.8, eta=0.0, draw=None,
                record=None, dtype=torch.float32):
    """SDEdit with an unconditional UNet2DModel and DDIM: the image ([1, 3, h, w] in [0, 1]) as
    2x - 1, noised by add_noise at the first timestep get_timesteps leaves, then DDIMPipeline's
    loop body from there.  Entries are numbered by their index in the full schedule."""
    rec = record or (lambda name, value: None)
    image = (2.0 * image_01 - 1.0).to(dtype)
    rec("original_image", image)
    scheduler.set_timesteps(num_inference_steps)
    timesteps, _, t_start = get_timesteps(scheduler, num_inference_steps, strength)
    rec("timesteps", timesteps)
    noise = draw("latents", image.shape).to(dtype)
    rec("input.noise", noise)
    x = scheduler.add_noise(image, noise, timesteps[:1]) if len(timesteps) else image
    rec("sdedit.noised", x)
    for k, t in enumerate(timesteps):
        i = t_start + k
        model_output = unet(x, t).sample
        vn = draw(f"step{i}", x.shape).to(dtype) if eta > 0 else None
        x, x0 = scheduler.step(model_output, t, x, eta=eta, variance_noise=vn)
        rec(f"step{i}.model_output", model_output)
        if vn is not None:
            rec(f"step{i}.noise", vn)
        rec(f"step{i}.pred_original_sample", x0)
        rec(f"step{i}.sample", x)
    return x, (x / 2 + 0.5).clamp(0, 1)
