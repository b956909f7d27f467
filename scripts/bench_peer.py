"""PyTorch peer for `deno task bench:model`: the seed's own HybridNet in eager mode.

`bench_peer.py MODE SIZE BATCH THREADS BUDGET_S [MIN_STEPS] [PRECISION] [DEVICE]` prints one JSON line
{"img_s": ..., "iters": ...}: img/s from the median step time over at least MIN_STEPS (default 3)
timed steps and BUDGET_S seconds (at most 50 steps), after two warm-up steps, exactly as the native
side of bench-model.ts measures. MODE is train (zero_grad, forward, focal loss gamma 1, backward,
Adam lr 1e-4: the seed's step) or infer (eval, no_grad). PRECISION bf16 runs the train step's forward
and loss under torch.autocast("cpu", dtype=torch.bfloat16) (default fp32). The driver runs it
with and without the tuned glibc allocator settings, so both peers come from this one script.
DEVICE (default cpu, or cuda:N) moves the model and batch there; each timed step then ends with
torch.cuda.synchronize(), as the native side waits for its loss or logits.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import torch  # noqa: E402

from seed_model import focal_loss, load_seed_module  # noqa: E402

mode, size, batch, threads, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
min_steps = int(sys.argv[6]) if len(sys.argv) > 6 else 3
bf16 = len(sys.argv) > 7 and sys.argv[7] == "bf16"
device = torch.device(sys.argv[8] if len(sys.argv) > 8 else "cpu")
torch.set_num_threads(threads)
torch.manual_seed(0)
model = load_seed_module().HybridNet(num_classes=8).to(device)
x = torch.randn(batch, 3, size, size, device=device)
y = torch.randint(0, 8, (batch,), device=device)
opt = torch.optim.Adam(model.parameters(), lr=1e-4)


def step() -> None:
    if mode == "train":
        model.train()
        opt.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = focal_loss(model(x), y)
        loss.backward()
        opt.step()
    else:
        model.eval()
        with torch.no_grad():
            model(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


step()
step()  # two warm-ups: allocator and oneDNN caches settle after the first two steps
times: list[float] = []
t0 = time.perf_counter()
while len(times) < min_steps or (time.perf_counter() - t0 < budget and len(times) < 50):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"img_s": batch / times[(len(times) - 1) // 2], "iters": len(times)}))
