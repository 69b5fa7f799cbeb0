#!/usr/bin/python3
"""Checks diffusers_torch.py against fixture case folders (diffusers reference outputs).

Usage (from anywhere):
    /usr/bin/python3 models/common/check_fixtures.py [CASE_DIR ...]

Without arguments it checks the model cases of tests/fixtures/diffusers (unet_ddpm_small,
vae_kl_small, unet_cond_sd_small, clip_text_small, taesd_small), plus every model case under
tests/golden/ when that folder exists.  A case folder holds config.json,
diffusion_pytorch_model.safetensors (model.safetensors for transformers' CLIP) and io.safetensors
(see each case's README.md).  For every
stored output it prints max|err| / max|ref| and fails (exit status 1) when one exceeds 1e-5.
`*_f64` references are compared with the model run in float64; `debug.*` taps are compared too.
"""

import json
import math
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import diffusers_torch as dt  # noqa: E402
import st  # noqa: E402

TOL = 1e-5


class Checker:
    def __init__(self):
        self.worst = 0.0
        self.failed = []
        self.n = 0

    def check(self, case, key, got, ref):
        got = got.detach().to(torch.float64)
        ref = ref.to(torch.float64)
        if got.shape != ref.shape:
            print(f"  {key:40s} SHAPE MISMATCH got {tuple(got.shape)} ref {tuple(ref.shape)}")
            self.failed.append(f"{case}:{key}")
            return
        denom = ref.abs().max().item() or 1.0
        rel = (got - ref).abs().max().item() / denom
        ok = rel <= TOL
        self.n += 1
        self.worst = max(self.worst, rel)
        if not ok:
            self.failed.append(f"{case}:{key}")
        print(f"  {key:40s} max|err|/max|ref| = {rel:.3e}  {'ok' if ok else 'FAIL'}")

    def check_exact(self, case, key, got, ref):
        same = got.shape == ref.shape and torch.equal(got.to(torch.int64), ref.to(torch.int64))
        self.n += 1
        if not same:
            self.failed.append(f"{case}:{key}")
        print(f"  {key:40s} exact: {'ok' if same else 'FAIL'}")


class Taps:
    """Records sub-module outputs (batch element 0) for the keys debug.<module name>."""

    def __init__(self, model, names):
        self.out = {}
        self.handles = []
        modules = dict(model.named_modules())
        for name in names:
            if name in modules:
                self.handles.append(modules[name].register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def hook(_mod, _inp, output):
            if isinstance(output, tuple):  # down blocks return (hidden, skips)
                output = output[0]
            if hasattr(output, "sample"):
                output = output.sample
            self.out.setdefault(name, output[0:1].detach().clone())
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def _tap_names(io, prefix=""):
    return [k[len("debug."):] for k in io if k.startswith("debug.") and k[len("debug."):].startswith(prefix)]


def _f64_twin(model):
    model64 = type(model).from_config(model.config_dict()).double().eval()
    model64.load_state_dict(model.state_dict())
    return model64


def check_unet(case, model, io, meta, chk):
    """UNet2DModel and UNet2DConditionModel (input.encoder_hidden_states, input.class_labels)."""
    model64 = _f64_twin(model)
    x = io["input.sample"]
    cond = {k: io[f"input.{k}"] for k in ("encoder_hidden_states", "class_labels") if f"input.{k}" in io}
    cond64 = {k: v.double() if v.is_floating_point() else v for k, v in cond.items()}
    kinds = {c["call"]: c.get("timestep_kind") for c in meta.get("calls", [])}
    debug_call = meta.get("debug_call")
    calls = sorted(int(k[4:].split(".")[0]) for k in io if k.startswith("call") and k.endswith(".timestep"))
    for n in calls:
        ts = io[f"call{n}.timestep"]
        t = int(ts.item()) if kinds.get(n) == "int" else ts  # python int or 0-d / 1-d tensor
        taps = Taps(model, _tap_names(io)) if n == debug_call else None
        with torch.no_grad():
            out = model(x, t, **cond).sample
            t_b = ts.reshape(-1) * torch.ones(x.shape[0], dtype=torch.int64)
            t_emb = model.time_proj(t_b)
            emb = model.time_embedding(t_emb)
        chk.check(case, f"call{n}.out", out, io[f"call{n}.out"])
        for key, val in ((f"call{n}.t_emb", t_emb), (f"call{n}.emb", emb)):
            if key in io:
                chk.check(case, key, val, io[key])
        if f"call{n}.out_f64" in io:
            with torch.no_grad():
                out64 = model64(x.double(), t, **cond64).sample
            chk.check(case, f"call{n}.out_f64", out64, io[f"call{n}.out_f64"])
        if taps is not None:
            taps.close()
            for name, val in sorted(taps.out.items()):
                chk.check(case, f"debug.{name}", val, io[f"debug.{name}"])
    if "time_proj.freqs" in io:
        half = model.config.block_out_channels[0] // 2
        freqs = torch.exp((-math.log(10000) * torch.arange(0, half, dtype=torch.float32))
                          / (half - model.config.freq_shift))
        chk.check(case, "time_proj.freqs", freqs, io["time_proj.freqs"])


def check_vae(case, model, io, chk):
    model64 = _f64_twin(model)
    x = io["input.sample"]
    enc_taps = Taps(model, [n for n in _tap_names(io) if n.startswith("encoder") or n == "quant_conv"])
    with torch.no_grad():
        dist = model.encode(x).latent_dist
    enc_taps.close()
    dec_taps = Taps(model, [n for n in _tap_names(io) if n.startswith("decoder") or n == "post_quant_conv"])
    with torch.no_grad():
        dec_mean = model.decode(dist.mean).sample
    dec_taps.close()
    with torch.no_grad():
        dec_z = model.decode(io["input.z"]).sample
        dist64 = model64.encode(x.double()).latent_dist
        dec_mean64 = model64.decode(dist64.mean).sample
        dec_z64 = model64.decode(io["input.z"].double()).sample
    results = {
        "encode.moments": dist.parameters, "encode.mean": dist.mean, "encode.logvar": dist.logvar,
        "encode.std": dist.std, "decode_mean.sample": dec_mean, "decode_z.sample": dec_z,
        "encode.mean_f64": dist64.mean, "encode.std_f64": dist64.std, "encode.logvar_f64": dist64.logvar,
        "decode_mean.sample_f64": dec_mean64, "decode_z.sample_f64": dec_z64,
    }
    for key, val in results.items():
        if key in io:
            chk.check(case, key, val, io[key])
    for name, val in sorted({**enc_taps.out, **dec_taps.out}.items()):
        chk.check(case, f"debug.{name}", val, io[f"debug.{name}"])


def check_vq(case, model, io, chk):
    x = io["input.sample"]
    with torch.no_grad():
        h = model.encode(x).latents
        _, idx = model.quantize(h)
        dec = model.decode(h).sample
        dec_nq = model.decode(h, force_not_quantize=True).sample
        # decode the stored latents too, so the decoder is checked independently of the encoder
        dec_ref_h = model.decode(io["encode.latents"]).sample
    chk.check(case, "encode.latents", h, io["encode.latents"])
    if "quantize.indices" in io:
        chk.check_exact(case, "quantize.indices", idx, io["quantize.indices"])
    chk.check(case, "decode.sample", dec, io["decode.sample"])
    chk.check(case, "decode.sample (from stored h)", dec_ref_h, io["decode.sample"])
    if "decode_noquant.sample" in io:
        chk.check(case, "decode_noquant.sample", dec_nq, io["decode_noquant.sample"])


def check_taesd(case, model, io, chk):
    """AutoencoderTiny: encoder taps from encode(input.sample), decoder taps from
    decode(encode.latents) (the stored latents, so the decoder is checked on its own)."""
    model64 = _f64_twin(model)
    x, z, lat_ref = io["input.sample"], io["input.z"], io["encode.latents"]
    taps = Taps(model, [n for n in _tap_names(io) if n.startswith("encoder")])
    with torch.no_grad():
        lat = model.encode(x).latents
    taps.close()
    dec_taps = Taps(model, [n for n in _tap_names(io) if n.startswith("decoder")])
    with torch.no_grad():
        dec_lat = model.decode(lat_ref).sample
    dec_taps.close()
    with torch.no_grad():
        results = {
            "encode.latents": lat, "decode_latents.sample": dec_lat, "decode_z.sample": model.decode(z).sample,
            "forward.sample": model(x).sample,
            "encode.latents_f64": model64.encode(x.double()).latents,
            "decode_latents.sample_f64": model64.decode(lat_ref.double()).sample,
            "decode_z.sample_f64": model64.decode(z.double()).sample,
        }
        q = model.quantize_latents(lat)
    for key, val in results.items():
        if key in io:
            chk.check(case, key, val, io[key])
    chk.check_exact(case, "forward.quantized_u8_as_i64", q, io["forward.quantized_u8_as_i64"])
    for name, val in sorted({**taps.out, **dec_taps.out}.items()):
        chk.check(case, f"debug.{name}", val, io[f"debug.{name}"])


def check_clip(case, model, io, meta, chk):
    """CLIPTextModel: call0 without attention_mask (what SD does), call1 with it; every hidden
    state, the pooled output and its index, the causal mask."""
    ids, mask = io["input.input_ids"], io["input.attention_mask"]
    chk.check(case, "causal_mask", dt.causal_attention_mask(ids.shape[-1]), io["causal_mask"])
    eos = model.config.eos_token_id
    pool = (ids.to(torch.int) == eos).int().argmax(dim=-1) if eos != 2 else ids.to(torch.int).argmax(dim=-1)
    chk.check_exact(case, "pool_index", pool, io["pool_index"])
    for n, attention_mask in ((0, None), (1, mask)):
        taps = Taps(model, _tap_names(io)) if n == meta.get("debug_call") else None
        with torch.no_grad():
            out = model(ids, attention_mask=attention_mask, output_hidden_states=True)
        if taps is not None:
            taps.close()
        chk.check(case, f"call{n}.last_hidden_state", out.last_hidden_state, io[f"call{n}.last_hidden_state"])
        chk.check(case, f"call{n}.pooler_output", out.pooler_output, io[f"call{n}.pooler_output"])
        stored = sorted(int(k.rsplit(".", 1)[1]) for k in io if k.startswith(f"call{n}.hidden_states."))
        if stored != list(range(len(out.hidden_states))):
            print(f"  call{n}.hidden_states: {len(out.hidden_states)} computed, stored {stored}  FAIL")
            chk.failed.append(f"{case}:call{n}.hidden_states")
        for i in stored[:len(out.hidden_states)]:
            chk.check(case, f"call{n}.hidden_states.{i}", out.hidden_states[i], io[f"call{n}.hidden_states.{i}"])
        if taps is not None:
            for name, val in sorted(taps.out.items()):
                chk.check(case, f"debug.{name}", val, io[f"debug.{name}"])


def check_case(folder, chk):
    case = os.path.relpath(folder, REPO)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    cls = config.get("_class_name") or config.get("model_type")
    meta = {}
    if os.path.exists(os.path.join(folder, "meta.json")):
        with open(os.path.join(folder, "meta.json")) as f:
            meta = json.load(f)
    print(f"{case} ({cls})")
    model = dt.load_pretrained(folder)
    io, _ = st.load(os.path.join(folder, "io.safetensors"))
    if cls in ("UNet2DModel", "UNet2DConditionModel"):
        check_unet(case, model, io, meta, chk)
    elif cls == "clip_text_model":
        check_clip(case, model, io, meta, chk)
    elif cls == "AutoencoderTiny":
        check_taesd(case, model, io, chk)
    elif cls == "AutoencoderKL":
        check_vae(case, model, io, chk)
    elif cls == "VQModel":
        check_vq(case, model, io, chk)
    else:
        raise ValueError(f"{case}: unsupported class {cls}")


def default_cases():
    fx = os.path.join(REPO, "tests", "fixtures", "diffusers")
    cases = [os.path.join(fx, name) for name in ("unet_ddpm_small", "vae_kl_small", "unet_cond_sd_small",
                                                  "clip_text_small", "taesd_small")]
    golden = os.path.join(REPO, "tests", "golden")
    if os.path.isdir(golden):
        for name in sorted(os.listdir(golden)):
            if os.path.exists(os.path.join(golden, name, "diffusion_pytorch_model.safetensors")):
                cases.append(os.path.join(golden, name))
    return cases


def main():
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
    cases = sys.argv[1:] or default_cases()
    chk = Checker()
    for folder in cases:
        check_case(folder, chk)
    print(f"\n{chk.n} comparisons, worst max|err|/max|ref| = {chk.worst:.3e} (tolerance {TOL:g})")
    if chk.failed:
        print("FAILED: " + ", ".join(chk.failed))
        return 1
    print("all ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
