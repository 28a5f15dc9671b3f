"""What the two PyTorch training benchmarks share (bench/bench_train.py on
the CPU with timm's ViT, bench/bench_train_gpu.py on a GPU with its own
ViT): the model and recipe flags (the same names and defaults as
`dino bench train`), the DINO loss (docs/DINO.md §4), the AdamW parameter groups
(no weight decay on biases and norms, §6), and the analytic FLOP count of
one step that `dino bench train` also prints. Needs only torch.
"""
import torch
import torch.nn.functional as F


def add_model_args(ap):
    """The shape and recipe flags of one DINO training step."""
    ap.add_argument("--embed_dim", type=int, default=384)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--num_heads", type=int, default=6)
    ap.add_argument("--patch_size", type=int, default=16)
    ap.add_argument("--img_size", type=int, default=224)
    ap.add_argument("--global_crop_size", type=int, default=224)
    ap.add_argument("--local_crop_size", type=int, default=96)
    ap.add_argument("--local_crops_number", type=int, default=8)
    ap.add_argument("--out_dim", type=int, default=65536)
    ap.add_argument("--head_hidden_dim", type=int, default=2048)
    ap.add_argument("--head_bottleneck_dim", type=int, default=256)
    ap.add_argument("--drop_path_rate", type=float, default=0.1)
    ap.add_argument("--clip_grad", type=float, default=3.0)
    ap.add_argument("--momentum_teacher", type=float, default=0.996)
    ap.add_argument("--teacher_temp", type=float, default=0.04)


def dino_loss(student, teacher, center, ncrops, teacher_temp, student_temp=0.1):
    """Cross-entropy of every (teacher global crop, other student crop) pair,
    in fp32 (a no-op cast for fp32 outputs)."""
    s = (student.float() / student_temp).chunk(ncrops)
    t = F.softmax((teacher.float() - center) / teacher_temp, dim=-1).detach().chunk(2)
    total, n = 0, 0
    for iq, q in enumerate(t):
        for v in range(ncrops):
            if v != iq:
                total = total + torch.sum(-q * F.log_softmax(s[v], dim=-1), dim=-1).mean()
                n += 1
    return total / n


def param_groups(model, weight_decay):
    """AdamW groups: decay on weights, none on biases and 1-D parameters."""
    reg, no_reg = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_reg if name.endswith(".bias") or p.ndim == 1 else reg).append(p)
    return [{"params": reg, "weight_decay": weight_decay}, {"params": no_reg, "weight_decay": 0.0}]


def forward_macs(dim, depth, patch, size):
    """Multiply-adds of one ViT forward (MLP ratio 4) on one size x size crop."""
    n = 1 + (size // patch) ** 2
    return (n - 1) * dim * 3 * patch * patch + depth * (12 * n * dim * dim + 2 * n * n * dim)


def head_macs(in_dim, hidden, bottleneck, out_dim):
    """Multiply-adds of the 3-layer DINO head on one row."""
    return in_dim * hidden + hidden * hidden + hidden * bottleneck + bottleneck * out_dim


def step_flops(a):
    """FLOPs of one step for the flags of add_model_args and a.batch: student
    forward + backward (3x) on every crop, teacher forward on the 2 global crops."""
    hm = head_macs(a.embed_dim, a.head_hidden_dim, a.head_bottleneck_dim, a.out_dim)
    fg = forward_macs(a.embed_dim, a.depth, a.patch_size, a.global_crop_size) + hm
    fl = forward_macs(a.embed_dim, a.depth, a.patch_size, a.local_crop_size) + hm
    return 2.0 * a.batch * (3.0 * (2 * fg + a.local_crops_number * fl) + 2 * fg)
