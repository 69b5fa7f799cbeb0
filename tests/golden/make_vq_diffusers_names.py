#!/usr/bin/python3
"""Derives tests/golden/vq_small_diffusers_names from tests/golden/vq_small.

Usage:  /usr/bin/python3 tests/golden/make_vq_diffusers_names.py

The same model and tensors as vq_small, with the outputs under the names that diffusers-based
generators give them:
  decode.sample          -> decode_quantized.sample    (VQModel.decode(h))
  decode_noquant.sample  -> decode_unquantized.sample  (VQModel.decode(h, force_not_quantize=True))
plus quantize.z_q, the VectorQuantizer output for h = encode.latents: z + (e[idx] - z) in float32
with idx the stored quantize.indices (checked here to be the argmin of torch.cdist, as vq_small's
README says).  Nothing here comes from the engine.  The conformance check must read every one of
these names; one it did not know would fail the case as an unchecked output.
"""

import json
import os
import shutil
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "common"))

import st  # noqa: E402

RENAME = {
    "decode.sample": "decode_quantized.sample",
    "decode_noquant.sample": "decode_unquantized.sample",
}


def main():
    torch.set_num_threads(1)
    src = os.path.join(HERE, "vq_small")
    dst = os.path.join(HERE, "vq_small_diffusers_names")
    os.makedirs(dst, exist_ok=True)
    for f in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))

    io, _ = st.load(os.path.join(src, "io.safetensors"))
    weights, _ = st.load(os.path.join(src, "diffusion_pytorch_model.safetensors"))
    out = {RENAME.get(k, k): v for k, v in io.items()}

    h = io["encode.latents"]
    codebook = weights["quantize.embedding.weight"]
    z = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
    idx = io["quantize.indices"].reshape(-1)
    assert torch.equal(torch.argmin(torch.cdist(z, codebook), dim=1), idx)
    zq = z + (codebook[idx] - z)
    out["quantize.z_q"] = zq.reshape(h.shape[0], h.shape[2], h.shape[3], h.shape[1]) \
        .permute(0, 3, 1, 2).contiguous()
    st.save(os.path.join(dst, "io.safetensors"), out, metadata={"format": "pt"})

    with open(os.path.join(src, "meta.json")) as f:
        meta = json.load(f)
    meta["case"] = "vq_small_diffusers_names"
    meta["derived_from"] = {
        "case": "vq_small", "generator": "tests/golden/make_vq_diffusers_names.py",
        "renamed": RENAME, "added": {"quantize.z_q": "z + (codebook[quantize.indices] - z), float32"},
    }
    meta["f32_vs_f64_maxabs"] = {RENAME.get(k, k): v for k, v in meta.get("f32_vs_f64_maxabs", {}).items()}
    with open(os.path.join(dst, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")

    table = "\n".join(f"| `{k}` | {'I64' if v.dtype == torch.int64 else 'F32'} | {list(v.shape)} |"
                      for k, v in sorted(out.items()))
    with open(os.path.join(dst, "README.md"), "w") as f:
        f.write(
            "# vq_small_diffusers_names: VQModel, outputs under diffusers' names\n\n"
            "The model, input and outputs of [`vq_small`](../vq_small/README.md) (read it for the calls), with the "
            "outputs renamed as diffusers-based generators name them, derived by "
            "`tests/golden/make_vq_diffusers_names.py`:\n\n"
            "- `decode_quantized.sample` = `model.decode(encode.latents).sample` (vq_small's `decode.sample`);\n"
            "- `decode_unquantized.sample` = `model.decode(encode.latents, force_not_quantize=True).sample` "
            "(vq_small's `decode_noquant.sample`);\n"
            "- `quantize.z_q` (new) = the VectorQuantizer output for `encode.latents`: `z + (e - z)` in float32, "
            "e the codebook rows of `quantize.indices` (the argmin of `torch.cdist`), NCHW.\n\n"
            "## Tensors in io.safetensors\n\n| key | dtype | shape |\n|---|---|---|\n" + table + "\n")


if __name__ == "__main__":
    main()
