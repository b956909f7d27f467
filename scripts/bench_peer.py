"""PyTorch peer for `deno task bench:model`: the seed's own HybridNet in eager mode.

`bench_peer.py MODE SIZE BATCH THREADS BUDGET_S` prints one JSON line
{"img_s": ..., "iters": ..., "first_s": ...}. MODE is train (zero_grad, forward, focal loss
gamma 1, backward, Adam lr 1e-4: the seed's step) or infer (eval, no_grad). The driver runs it
with and without the tuned glibc allocator settings, so both peers come from this one script.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import torch  # noqa: E402

from seed_model import focal_loss, load_seed_module  # noqa: E402

mode, size, batch, threads, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = load_seed_module().HybridNet(num_classes=8)
x = torch.randn(batch, 3, size, size)
y = torch.randint(0, 8, (batch,))
opt = torch.optim.Adam(model.parameters(), lr=1e-4)


def step() -> None:
    if mode == "train":
        model.train()
        opt.zero_grad()
        focal_loss(model(x), y).backward()
        opt.step()
    else:
        model.eval()
        with torch.no_grad():
            model(x)


t0 = time.perf_counter()
step()
first = time.perf_counter() - t0
if first < budget:
    step()  # second warm-up: allocator and oneDNN caches settle after the first two steps
iters, t0 = 0, time.perf_counter()
while iters < 2 or (time.perf_counter() - t0 < budget and iters < 50):
    if first > budget and iters >= 1:
        break
    step()
    iters += 1
dt = time.perf_counter() - t0
print(json.dumps({"img_s": iters * batch / dt, "iters": iters, "first_s": first}))
