"""Fresh parity oracle with this Python's torch: `make_oracle.py OUT_DIR`.

Same recipe as shared/reference/hybridnet-seed (seed 0 model, seed 1 input [2,3,64,64], focal
gamma 1 on targets [3,5], one Adam step lr 1e-4 with dropout off), plus the weights after the
step so a reimplementation can compare every parameter.
"""
import json
import os
import sys

import torch

from seed_model import focal_loss, load_seed_module, save_safetensors

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(2)
seed = load_seed_module()
torch.manual_seed(0)
model = seed.HybridNet(num_classes=8)
save_safetensors(f"{out}/init.safetensors", model.state_dict())
torch.manual_seed(1)
x = torch.randn(2, 3, 64, 64)
x.numpy().astype("<f4").tofile(f"{out}/input.bin")
targets = torch.tensor([3, 5])

model.eval()
with torch.no_grad():
    logits = model(x)
logits.numpy().astype("<f4").tofile(f"{out}/logits.bin")

for m in model.modules():
    if isinstance(m, torch.nn.Dropout):
        m.p = 0.0
model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
opt.zero_grad()
loss = focal_loss(model(x), targets)
loss.backward()
save_safetensors(f"{out}/grads.safetensors", {n: p.grad for n, p in model.named_parameters() if p.grad is not None})
opt.step()
save_safetensors(f"{out}/after_adam.safetensors", model.state_dict())
with torch.no_grad():
    loss_after = focal_loss(model(x), targets)
json.dump({
    "torch": torch.__version__,
    "eval_logits": logits.flatten().tolist(),
    "focal_loss": loss.item(),
    "loss_after_one_adam_step": loss_after.item(),
    "num_parameters": sum(p.numel() for p in model.parameters()),
}, open(f"{out}/oracle.json", "w"), indent=1)
print(json.dumps({"focal_loss": loss.item(), "loss_after": loss_after.item()}))
