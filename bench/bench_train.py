"""PyTorch's side of `dino bench train`: one DINO training step as the reference
runs it (docs/DINO.md §2–§4, §6), timed on synthetic multi-crop batches.

The backbone is timm's VisionTransformer (class token, LayerNorm eps 1e-6,
drop path, dynamic_img_size so the 96-px crops interpolate the position
embedding); the head, the multi-crop wrapper, the loss, per-parameter
gradient clipping, the two AdamW parameter groups, the teacher EMA and the
centre update are written here from docs/DINO.md. One step = teacher forward on the
2 global crops (no_grad), student forward on all crops, DINO loss, zero_grad,
backward, clip_gradients, AdamW step, EMA, centre update (fp32, CPU). With
--bf16 the two forwards and the loss run under torch.autocast("cpu",
dtype=torch.bfloat16), where the reference puts its fp16 autocast; the
optimizer, EMA and weights stay fp32.
The model's dimensions come as flags; bench/run.sh passes the ones
`dino bench train --print_config 1` prints, so both sides run the same shapes.

Run: PY=$(tools/venv.sh); $PY bench/bench_train.py --threads 2 --batch 8 --iters 3
"""
import argparse
import contextlib
import resource
import statistics
import time
import warnings
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
import timm
from dino_bench_common import add_model_args, dino_loss, param_groups, step_flops
from timm.models.vision_transformer import VisionTransformer


class DINOHead(nn.Module):
    def __init__(self, in_dim, out_dim, norm_last_layer=True, nlayers=3, hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        layers = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
        for _ in range(nlayers - 2):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x)


class MultiCropWrapper(nn.Module):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        widths = torch.tensor([inp.shape[-1] for inp in x])
        ends = torch.cumsum(torch.unique_consecutive(widths, return_counts=True)[1], 0)
        start, out = 0, []
        for end in ends:
            out.append(self.backbone(torch.cat(x[start:end])))
            start = end
        return self.head(torch.cat(out))


def clip_gradients(model, clip):
    for p in model.parameters():
        if p.grad is not None:
            norm = p.grad.data.norm(2)
            coef = clip / (norm + 1e-6)
            if coef < 1:
                p.grad.data.mul_(coef)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--bf16", action="store_true", help="forwards and loss under CPU autocast in bf16")
    add_model_args(ap)
    a = ap.parse_args()
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.bf16 else contextlib.nullcontext
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    def vit(dpr):
        return VisionTransformer(img_size=a.img_size, patch_size=a.patch_size, embed_dim=a.embed_dim,
                                 depth=a.depth, num_heads=a.num_heads, mlp_ratio=4, qkv_bias=True,
                                 num_classes=0, global_pool="token", drop_path_rate=dpr,
                                 norm_layer=partial(nn.LayerNorm, eps=1e-6), dynamic_img_size=True)

    def head():
        return DINOHead(a.embed_dim, a.out_dim, True, 3, a.head_hidden_dim, a.head_bottleneck_dim)

    student = MultiCropWrapper(vit(a.drop_path_rate), head())
    teacher = MultiCropWrapper(vit(0.0), head())
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    opt = torch.optim.AdamW(param_groups(student, 0.04))
    ncrops = 2 + a.local_crops_number
    center = torch.zeros(1, a.out_dim)
    B, G, L = a.batch, a.global_crop_size, a.local_crop_size
    gen = torch.Generator().manual_seed(1)
    images = [torch.randn(B, 3, G, G, generator=gen) for _ in range(2)]
    images += [torch.randn(B, 3, L, L, generator=gen) for _ in range(a.local_crops_number)]

    def step():
        nonlocal center
        for g in opt.param_groups:
            g["lr"] = 1e-4
            if g["weight_decay"] != 0.0:
                g["weight_decay"] = 0.04
        with amp():
            with torch.no_grad():
                t_out = teacher(images[:2])
            s_out = student(images)
            loss = dino_loss(s_out, t_out, center, ncrops, a.teacher_temp)
        t_out = t_out.float()
        opt.zero_grad()
        loss.backward()
        if a.clip_grad > 0:
            clip_gradients(student, a.clip_grad)
        opt.step()
        with torch.no_grad():
            m = a.momentum_teacher
            for pq, pk in zip(student.parameters(), teacher.parameters()):
                pk.data.mul_(m).add_((1 - m) * pq.detach().data)
            batch_center = torch.sum(t_out, dim=0, keepdim=True) / len(t_out)
            center = center * 0.9 + batch_center * 0.1
        return loss.item()

    student.train()
    teacher.train()
    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    flops = step_flops(a)
    print(f"torch {torch.__version__}, timm {timm.__version__}, threads {torch.get_num_threads()}")
    print(f"precision: {'bf16 autocast' if a.bf16 else 'fp32'}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"model: D={a.embed_dim} depth={a.depth} heads={a.num_heads} patch={a.patch_size}; "
          f"batch {B}: 2x{G} + {a.local_crops_number}x{L} crops, out_dim {a.out_dim}")
    print(f"loss {loss:.4f}")
    print(f"train step: median {med:.4f} s, mean {sum(times) / len(times):.4f} s over {a.iters} steps")
    print(f"images/s: {B / med:.3f} (median)")
    print(f"GFLOP/s: {flops / med / 1e9:.1f} (median); {flops / B / 1e9:.2f} GFLOP per image")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
