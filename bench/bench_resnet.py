"""PyTorch's side of `dino bench resnet`: torchvision's resnet50 with fc =
Identity, random weights, torch.set_num_threads(threads).

Without --step: the inference pass (eval mode, no_grad) of (batch, 3, size,
size). With --step: the passes of a DINO step as the reference runs them, on
batch images with 2 global crops of 224 px and 8 local crops of 96 px: the
teacher (MultiCropWrapper over the global crops, train mode, no_grad) and
the student (every crop, train mode), a DINOHead (2048 -> 2048 -> 2048 ->
256 -> out_dim) on each, and the backward of sum(logits * G) with G the
same fixed small gradient as ours; no loss, optimizer or EMA (O(parameters)
either side). Prints the median time, images/s and the convolutions' GFLOP/s
(the same count as resnet_forward_macs) and the peak RSS.

Run: PY=$(tools/venv.sh); $PY bench/bench_resnet.py --threads 2 --batch 8 [--step]
"""
import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def conv_macs(model, size):
    total = [0]

    def hook(mod, inp, out):
        total[0] += out.numel() // out.shape[0] * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    model.train(was)
    for h in hs:
        h.remove()
    return total[0]


class DINOHead(nn.Module):
    def __init__(self, in_dim, out_dim, hidden=2048, bottleneck=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, bottleneck))
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        return self.last_layer(F.normalize(self.mlp(x), dim=-1, p=2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--step", action="store_true")
    ap.add_argument("--out_dim", type=int, default=65536)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bb = torchvision.models.resnet50()
    bb.fc = nn.Identity()
    B = args.batch
    if not args.step:
        bb.eval()
        x = torch.randn(B, 3, args.size, args.size)
        flops = 2.0 * conv_macs(bb, args.size) * B

        def run():
            with torch.no_grad():
                bb(x)
    else:
        g, l = conv_macs(bb, 224), conv_macs(bb, 96)
        flops = 2.0 * (2 * B * g + 3 * (2 * B * g + 8 * B * l))
        student = nn.ModuleDict({"backbone": bb, "head": DINOHead(2048, args.out_dim)}).train()
        teacher = nn.ModuleDict({"backbone": torchvision.models.resnet50(),
                                 "head": DINOHead(2048, args.out_dim)}).train()
        teacher["backbone"].fc = nn.Identity()
        glob = torch.randn(2 * B, 3, 224, 224)
        loc = torch.randn(8 * B, 3, 96, 96)
        G = (1e-4 * ((torch.arange(10 * B * args.out_dim) % 7) - 3).float()).view(10 * B, args.out_dim)

        def run():
            with torch.no_grad():
                teacher["head"](teacher["backbone"](glob))
            student.zero_grad(set_to_none=False)
            feats = torch.cat([student["backbone"](glob), student["backbone"](loc)])
            (student["head"](feats) * G).sum().backward()
    for _ in range(args.warmup):
        run()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, resnet50"
          f"{' DINO step passes, 2x224 + 8x96' if args.step else f' inference at {args.size}'}, batch {B}")
    print(f"best: {min(times):.4f} s over {args.iters} iters")
    print(f"median: {med:.4f} s per batch, {B / med:.2f} images/s, {flops / med / 1e9:.1f} GFLOP/s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
