"""PyTorch peer of the GPU check's benchmark: the seed's own HybridNet in eager mode.

`peer.py SEED_MODEL DEVICE THREADS` imports the seed's model file (carried in the pack from
../shared/anchors/pytorch_seed/hybridnet_seed.py, unedited) and then answers one JSON request
per stdin line with one JSON line on stdout, so the Deno driver can interleave its own
measurements with these in one run and one GPU context:

  {"mode": "train"|"infer", "size": 128, "batch": 128, "precision": "fp32"|"bf16",
   "channels_last": false, "budget": 1.5, "min_steps": 5}
  -> {"img_s": ..., "steps": ..., "loss": ...}  or  {"error": "..."}

Train = zero_grad, forward (train mode), focal loss (gamma 1, the seed's), backward, Adam(lr
1e-4); infer = eval + no_grad forward with the logits copied to the host. The batch is a CPU
tensor moved to the device in every step, as the seed's loop does with each DataLoader batch (the
native side also takes its batch from host memory). bf16 = torch.autocast(dtype=torch.bfloat16),
weights fp32. TF32 is on for matmul and cuDNN (the driver turns it on natively too). img/s: after
2 warm-up steps and 1 probe step, 3 chunks of k steps (k from the budget, at least min_steps,
at most 50), each chunk ended by one synchronize; the median chunk.
"""
import faulthandler
import importlib.util
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

faulthandler.enable()  # a crash inside torch prints the Python stack into the stage log
seed_path, device = sys.argv[1], torch.device(sys.argv[2])
if device.type == "cpu":
    torch.set_num_threads(int(sys.argv[3]))  # the same count the driver gives libtorch
spec = importlib.util.spec_from_file_location("hybridnet_seed", seed_path)
seed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seed)
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True


def focal(logits, targets):
    logp = F.log_softmax(logits.float(), dim=1).gather(1, targets[:, None]).squeeze(1)
    return (-(1 - logp.exp()) * logp).mean()


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(req):
    torch.manual_seed(0)
    fmt = torch.channels_last if req["channels_last"] else torch.contiguous_format
    model = seed.HybridNet(num_classes=8).to(device, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    b, s = req["batch"], req["size"]
    x_host = torch.rand(b, 3, s, s) * 2 - 1
    y_host = torch.randint(0, 8, (b,))
    amp = req["precision"] == "bf16"
    last = [float("nan")]

    def steps(k):
        """k steps; a train step leaves the device running (as a run's loop does between loss
        reads) and the last one synchronizes; inference brings each batch's logits to the host."""
        for _ in range(k):
            x = x_host.to(device).contiguous(memory_format=fmt)
            y = y_host.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                if req["mode"] == "train":
                    model.train()
                    opt.zero_grad(set_to_none=True)
                    loss = focal(model(x), y)
                    loss.backward()
                    opt.step()
                    last[0] = loss.detach()
                else:
                    model.eval()
                    with torch.no_grad():
                        model(x).float().cpu()
        sync()

    steps(2)  # warm-ups: cuDNN picks its algorithms and the caching allocator fills
    t = time.perf_counter()
    steps(1)
    k = max(req["min_steps"], min(50, math.ceil(req["budget"] / 3 / (time.perf_counter() - t))))
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        steps(k)
        rates.append(k * b / (time.perf_counter() - t))
    rates.sort()
    loss = float(last[0]) if req["mode"] == "train" else None
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"img_s": rates[1], "steps": 3 * k, "loss": loss}


print(json.dumps({"ready": True, "torch": torch.__version__,
                  "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
                  "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}), flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    try:
        res = measure(json.loads(line))
    except Exception as e:  # the driver reports it in its table and goes on
        res = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(res), flush=True)
