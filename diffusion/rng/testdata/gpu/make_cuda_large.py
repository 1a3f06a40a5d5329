"""Writes ../torch_cuda_large.safetensors: torch.randn with a CUDA generator for
draws larger than an H100/H200's launch grid (270336 threads), which wrap
around it, at selected indices. Run on the GPU the fixture should describe:

    python3 make_cuda_large.py ../torch_cuda_large.safetensors
"""
import json
import struct
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

GRID = 270336  # 132 SMs x 8 blocks x 256 threads on an H100/H200


def pick(n, windows, w, nrand, seed):
    """Windows of +-w around the given indices, the last w, and nrand indices
    from a 64-bit LCG (the same selection the committed file holds)."""
    s = set()
    for c in windows:
        s.update(i for i in range(c - w, c + w) if 0 <= i < n)
    s.update(range(max(0, n - w), n))
    x = seed
    for _ in range(nrand):
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        s.add((x >> 33) % n)
    return np.array(sorted(s), dtype=np.int64)


def main(path):
    p = torch.cuda.get_device_properties(0)
    assert p.multi_processor_count * (p.max_threads_per_multi_processor // 256) * 256 == GRID, p
    out, meta = {}, {}

    def put(name, vals, idx, **m):
        out[name + ".index"] = idx.astype(np.int32)
        out[name + ".value"] = vals.float().cpu().numpy()[idx].astype(np.float32)
        meta[name] = m

    g = torch.Generator("cuda").manual_seed(123)
    a = torch.randn(2500001, generator=g, device="cuda")
    put("big", a, pick(2500001, range(0, 2500001, GRID), 128, 3000, 1),
        seed=123, numel=2500001, dtype="float32", offset_after=g.get_offset())
    b = torch.randn(1000, generator=g, device="cuda")
    put("big_next", b, pick(1000, [], 500, 0, 2), seed=123, numel=1000, dtype="float32",
        note="the draw after big, same generator", offset_after=g.get_offset())
    g = torch.Generator("cuda").manual_seed(99)
    c = torch.randn(600000, generator=g, device="cuda", dtype=torch.float16)
    put("half", c, pick(600000, [0, GRID, 2 * GRID], 128, 1000, 3), seed=99, numel=600000,
        dtype="float16", note="values widened to float32", offset_after=g.get_offset())
    d = torch.randn(270337, generator=g, device="cuda")
    put("after_half", d, pick(270337, [0, GRID], 128, 200, 4), seed=99, numel=270337,
        dtype="float32", note="the draw after half, same generator", offset_after=g.get_offset())
    edge = [dict(seed=144, numel=65536, index=21111), dict(seed=168, numel=100000, index=65841)]
    vals, halves = [], []
    for e in edge:
        for dt, acc in ((torch.float32, vals), (torch.float16, halves)):
            g = torch.Generator("cuda").manual_seed(e["seed"])
            acc.append(torch.randn(e["numel"], generator=g, device="cuda", dtype=dt)[e["index"]].float().item())
    out["edge.value"] = np.array(vals, dtype=np.float32)
    out["edge.half"] = np.array(halves, dtype=np.float32)
    meta["edge"] = dict(cases=edge, note="elements whose Philox y >= 2^32-128, the largest Box-Muller "
                        "angle (v = float(2π)); edge.half is the same draw in float16")
    meta["what"] = "torch.randn on %s (%d SMs, %d threads per SM), torch %s; values at the listed indices" % (
        p.name, p.multi_processor_count, p.max_threads_per_multi_processor, torch.__version__)
    save_file(out, path, metadata={"case": json.dumps(meta)})


if __name__ == "__main__":
    main(sys.argv[1])
