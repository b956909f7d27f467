"""Does the seed's PyTorch model accept a natively written checkpoint?

`check_state_dict.py CKPT INPUT_BIN N C H W NUM_CLASSES` loads CKPT with
load_state_dict(strict=True) into the seed's HybridNet and prints its eval logits as JSON.
"""
import json
import sys

import numpy as np
import torch

from seed_model import load_safetensors, load_seed_module

ckpt, inp, n, c, h, w, k = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:8])
torch.set_num_threads(2)
model = load_seed_module().HybridNet(num_classes=k, input_channels=c)
model.load_state_dict(load_safetensors(ckpt), strict=True)
model.eval()
x = torch.from_numpy(np.fromfile(inp, dtype="<f4").reshape(n, c, h, w).copy())
with torch.no_grad():
    print(json.dumps(model(x).flatten().tolist()))
