#!/usr/bin/python3
"""Writes tests/golden/ops/resample.safetensors: PyTorch's bicubic and
bilinear interpolation (align_corners=False) of a fixed random input, the
independent reference for the engine's ge_upsample_bicubic/bilinear.

    /usr/bin/python3 tests/golden/make_ops_golden.py
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "common"))
import st  # noqa: E402

g = torch.Generator().manual_seed(4242)
x = torch.rand((1, 3, 9, 13), generator=g) * 2 - 1
out = {"input": x}
for name, size in [("x2", (18, 26)), ("x4", (36, 52)), ("odd", (20, 17))]:
    for mode in ("bicubic", "bilinear"):
        out[f"{mode}.{name}"] = torch.nn.functional.interpolate(
            x, size=size, mode=mode, align_corners=False)
st.save(os.path.join(HERE, "ops", "resample.safetensors"),
        {k: v.contiguous() for k, v in out.items()},
        metadata={"torch": torch.__version__})
