"""Times PyTorch's ViT inference pass on the shapes `dino bench forward` uses
(with --backward: a training-mode forward plus backward, like `--backward 1`).

timm's vit_small_patch16_224 (random weights, num_classes=0), eval mode,
torch.no_grad(), forward_features on a (batch, 3, size, size) input, with
torch.set_num_threads(threads). Prints images/s and GFLOP/s with the same
analytic FLOP count as src/cli/cmd_bench.c.

With --bf16 the pass runs under torch.autocast("cpu", dtype=torch.bfloat16),
PyTorch's mixed precision (what `dino bench forward --use_bf16 true` is
compared with).

Run: PY=$(tools/venv.sh); $PY bench/bench_forward.py --threads 2 --batch 8 --size 224 --iters 10
"""
import argparse
import contextlib
import resource
import statistics
import time

import torch
import timm


def forward_macs(dim, depth, heads, patch, H, W, in_chans=3, mlp_ratio=4):
    n = 1 + (H // patch) * (W // patch)
    h4 = mlp_ratio * dim
    patch_macs = (n - 1) * dim * in_chans * patch * patch
    block = n * dim * 3 * dim + n * dim * dim + 2 * n * dim * h4 + 2 * n * n * dim
    return patch_macs + depth * block


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="vit_small_patch16_224")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--backward", action="store_true",
                    help="train mode forward + backward of sum(tokens*R) (grads of all weights)")
    ap.add_argument("--bf16", action="store_true", help="under CPU autocast in bf16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext
    m = timm.create_model(args.arch, pretrained=False, num_classes=0,
                          img_size=args.size, dynamic_img_size=False).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)

    def step():
        if not args.backward:
            with torch.no_grad(), amp():
                m.forward_features(x)
            return
        with amp():
            out = m.forward_features(x).float()
        m.zero_grad(set_to_none=False)
        (out * R).sum().backward()

    if args.backward:
        m.train()
        with torch.no_grad():
            R = torch.randn_like(m.forward_features(x))
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    mean, best = sum(times) / len(times), min(times)
    pe = m.patch_embed.proj
    flops = 2 * forward_macs(m.embed_dim, len(m.blocks), m.blocks[0].attn.num_heads,
                             pe.kernel_size[0], args.size, args.size) * args.batch
    if args.backward:
        flops *= 3
    print(f"torch {torch.__version__}, timm {timm.__version__}, threads {torch.get_num_threads()}")
    print(f"precision: {'bf16 autocast' if args.bf16 else 'fp32'}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"model: {args.arch}, batch {args.batch}, {args.size}x{args.size}")
    what = "forward+backward" if args.backward else "forward"
    print(f"{what}: mean {mean:.4f} s, best {best:.4f} s per batch over {args.iters} iters")
    print(f"images/s: {args.batch / mean:.2f} (mean), {args.batch / best:.2f} (best)")
    print(f"GFLOP/s: {flops / mean / 1e9:.1f} (mean), {flops / best / 1e9:.1f} (best)")
    med = statistics.median(times)
    print(f"median: {med:.4f} s per batch, {args.batch / med:.2f} images/s, {flops / med / 1e9:.1f} GFLOP/s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
