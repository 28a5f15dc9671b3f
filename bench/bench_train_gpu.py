"""PyTorch's side of `dino bench train --device cuda`: one DINO training step on
one GPU, as strong as plain PyTorch makes it, timed on synthetic multi-crop
batches already on the device.

Model and step follow docs/DINO.md (§1–§4, §6) and need only torch (no timm): a
ViT with class token, bicubic position-embedding interpolation for the local
crops, LayerNorm eps 1e-6, exact GELU, stochastic depth; attention through
F.scaled_dot_product_attention (flash / memory-efficient kernels); the DINO
head (3-layer MLP, F.normalize, weight-normalised last layer with g fixed);
the multi-crop wrapper; the DINO loss; per-tensor gradient clipping done with
foreach norms and a clamped scale (the same arithmetic as the reference's
loop, without a host sync per tensor); AdamW (fused) with the two parameter
groups; teacher EMA with foreach ops; the centre update.

Modes: `eager` (bf16 autocast around the forward passes, fp32 master
weights, loss in fp32 — the reference's use_fp16 path with bf16) and
`compile` (the same under torch.compile of the backbones and heads).
Prints one JSON line per mode (images/s, step time, MFU against the bf16
dense peak of the card) so scripts/gpu_check.sh can tabulate them.

Run: python3 bench/bench_train_gpu.py --mode eager --batch 64 --iters 10
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from dino_bench_common import add_model_args, dino_loss, param_groups, step_flops


# ---------------------------------------------------------------- model

class Block(nn.Module):
    def __init__(self, dim, heads, dpr):
        super().__init__()
        self.heads, self.dpr = heads, dpr
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def drop_path(self, x):
        if self.dpr == 0.0 or not self.training:
            return x
        keep = 1.0 - self.dpr
        mask = torch.empty(x.shape[0], 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep

    def forward(self, x):
        B, T, D = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.drop_path(self.proj(y.transpose(1, 2).reshape(B, T, D)))
        x = x + self.drop_path(self.fc2(F.gelu(self.fc1(self.norm2(x)))))
        return x


class ViT(nn.Module):
    def __init__(self, dim, depth, heads, patch, img_size, dpr):
        super().__init__()
        self.patch, self.grid = patch, img_size // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid ** 2, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        rates = [dpr * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.ModuleList(Block(dim, heads, r) for r in rates)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def pos(self, h, w):
        n = h * w
        if n == self.grid ** 2 and h == w:
            return self.pos_embed
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        D = grid.shape[-1]
        grid = grid.reshape(1, self.grid, self.grid, D).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((h + 0.1) / self.grid, (w + 0.1) / self.grid), mode="bicubic",
                             align_corners=False)
        return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, -1, D)], dim=1)

    def forward(self, x):
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos(h, w)
        for b in self.blocks:
            x = b(x)
        return self.norm(x)[:, 0]


class DINOHead(nn.Module):
    def __init__(self, in_dim, out_dim, hidden, bottleneck):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # weight_norm with g fixed at 1 (norm_last_layer): w = v / ||v_row||
        self.weight_v = nn.Parameter(torch.empty(out_dim, bottleneck).uniform_(-bottleneck ** -0.5, bottleneck ** -0.5))

    def forward(self, x):
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return F.linear(x, self.weight_v / self.weight_v.norm(dim=1, keepdim=True))


class MultiCrop(nn.Module):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, groups):
        return self.head(torch.cat([self.backbone(g) for g in groups]))


# ---------------------------------------------------------------- accounting

def bf16_peak_tflops(name):
    n = name.upper()
    if "H100" in n or "H200" in n or "GH200" in n:
        return 989.4 if ("SXM" in n or "HBM3" in n or "H200" in n) else 756.0  # PCIe H100: 756
    if "A100" in n:
        return 312.0
    if "L40" in n:
        return 362.1
    return None


# ---------------------------------------------------------------- benchmark

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    add_model_args(ap)
    ap.add_argument("--peak_tflops", type=float, default=0.0, help="bf16 dense peak (0: from the card's name)")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to smoke-test this script at tiny sizes")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"mode": a.mode, "error": "no CUDA device"}))
        return 77
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    def vit(dpr):
        return ViT(a.embed_dim, a.depth, a.num_heads, a.patch_size, a.img_size, dpr)

    def head():
        return DINOHead(a.embed_dim, a.out_dim, a.head_hidden_dim, a.head_bottleneck_dim)

    student = MultiCrop(vit(a.drop_path_rate), head()).to(dev)
    teacher = MultiCrop(vit(0.0), head()).to(dev)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    opt = torch.optim.AdamW(param_groups(student, 0.04), lr=1e-4, fused=cuda)
    s_params = [p for p in student.parameters()]
    t_params = [p for p in teacher.parameters()]
    ncrops = 2 + a.local_crops_number
    center = torch.zeros(1, a.out_dim, device=dev)
    B, G, L = a.batch, a.global_crop_size, a.local_crop_size
    gen = torch.Generator(device=dev).manual_seed(1)
    global_crops = torch.randn(2 * B, 3, G, G, device=dev, generator=gen)
    local_crops = torch.randn(a.local_crops_number * B, 3, L, L, device=dev, generator=gen)

    s_fwd, t_fwd = student, teacher
    if a.mode == "compile":
        student.backbone = torch.compile(student.backbone, dynamic=False)
        student.head = torch.compile(student.head, dynamic=False)
        teacher.backbone = torch.compile(teacher.backbone, dynamic=False)
        teacher.head = torch.compile(teacher.head, dynamic=False)

    def step():
        nonlocal center
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            with torch.no_grad():
                t_out = t_fwd([global_crops])
            s_out = s_fwd([global_crops, local_crops])
        loss = dino_loss(s_out, t_out, center, ncrops, a.teacher_temp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip_grad > 0:
            grads = [p.grad for p in s_params if p.grad is not None]
            norms = torch._foreach_norm(grads, 2)
            coefs = [torch.clamp(a.clip_grad / (n + 1e-6), max=1.0) for n in norms]
            torch._foreach_mul_(grads, coefs)
        opt.step()
        with torch.no_grad():
            m = a.momentum_teacher
            torch._foreach_mul_(t_params, m)
            torch._foreach_add_(t_params, s_params, alpha=1 - m)
            batch_center = torch.sum(t_out.float(), dim=0, keepdim=True) / len(t_out)
            center = center * 0.9 + batch_center * 0.1
        return loss

    student.train()
    teacher.train()
    t_setup = time.perf_counter()
    for _ in range(a.warmup):
        step()
    sync()
    setup = time.perf_counter() - t_setup
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak = a.peak_tflops or bf16_peak_tflops(name)
    flops = step_flops(a)
    out = {
        "engine": "pytorch " + a.mode + " bf16-autocast",
        "mode": a.mode,
        "torch": torch.__version__,
        "device": name,
        "batch": B,
        "crops": f"2x{G}+{a.local_crops_number}x{L}",
        "loss": float(loss.item()),
        "step_s_median": med,
        "images_per_s": B / med,
        "tflops": flops / med / 1e12,
        "mfu": (flops / med / 1e12) / peak if peak else None,
        "peak_bf16_tflops": peak,
        "warmup_s": setup,
        "max_mem_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None,
    }
    print(json.dumps(out))
    return 0 if math.isfinite(out["loss"]) else 1


if __name__ == "__main__":
    sys.exit(main())
