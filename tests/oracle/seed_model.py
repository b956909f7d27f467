"""The test oracle model: the seed document's own ```python block, executed as a module.

It is read from the seed document at run time (HN_SEED_DOC, default ../shared/seed/hybridnet-seed.md
next to the project), so the oracle is exactly what the user wrote and nothing is copied here.
"""
import os
import re
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED_DOC = os.environ.get("HN_SEED_DOC", os.path.join(ROOT, "..", "shared", "seed", "hybridnet-seed.md"))


def load_seed_module() -> types.ModuleType:
    text = open(SEED_DOC, encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    if not blocks:
        raise SystemExit(f"{SEED_DOC}: no ```python block found")
    mod = types.ModuleType("hybridnet_seed")
    exec(compile(blocks[0], SEED_DOC, "exec"), mod.__dict__)
    return mod


def focal_loss(logits, targets, gamma: float = 1.0):
    import torch.nn.functional as F
    logp = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    return (-(1 - logp.exp()) ** gamma * logp).mean()


def save_safetensors(path: str, tensors: dict) -> None:
    """Minimal safetensors writer (the safetensors package is not a dependency)."""
    import json
    import struct
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str) -> dict:
    import json
    import struct
    import numpy as np
    import torch
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} has dtype {meta['dtype']}, expected F32")
        b, e = meta["data_offsets"]
        arr = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(meta["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out
