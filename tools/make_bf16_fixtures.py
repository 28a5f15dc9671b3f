"""Writes tests/fixtures/bf16_vit.dfx for tests/test_bf16.c: a small ViT's
outputs in fp32, under PyTorch's CPU autocast in bf16, and under the
mixed precision dino.c implements (docs/ENGINE.md, "bf16 mode"), restated
here in PyTorch: every Linear (patch embedding included) and both attention
matmuls take bf16-rounded inputs and sum in fp32; the bias, LayerNorm,
softmax, GELU and the residual stream stay fp32. Autocast differs from that
in rounding each Linear/matmul output to bf16 and running LayerNorm, softmax
and GELU on bf16 tensors; the script prints how far apart the two are, which
is what the C test's autocast tolerance is set from.

Weights and images are regenerated in C with fixture_fill exactly as for
tools/make_engine_fixtures.py (parameter i = fill(PARAM_SEED + i), images
fill(IMG_SEED + 16*k)).

Run: PY=$(tools/venv.sh); $PY tools/make_bf16_fixtures.py
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402
from make_engine_fixtures import IMG_SEED, OUT, Dino, ViT, fill_params  # noqa: E402

# The model of the C test: D=96, 3 blocks, 3 heads, MLP 384, 64-px images,
# patch 8 (65 tokens: not a multiple of the attention kernel's tiles).
DIM, DEPTH, HEADS, HIDDEN, IMG, PATCH, B = 96, 3, 3, 384, 64, 8, 2
CASE = 20  # image seed IMG_SEED + 16*CASE


def bf16(x):
    return x.to(torch.bfloat16).float()


def ours(vit, x, rnd):
    """dino.c's forward with matmul inputs passed through rnd (identity: fp32)."""
    Bn = x.shape[0]
    w = vit.patch_embed.proj.weight
    t = F.conv2d(rnd(x), rnd(w), vit.patch_embed.proj.bias, stride=PATCH).flatten(2).transpose(1, 2)
    t = torch.cat((vit.cls_token.expand(Bn, -1, -1), t), dim=1) + vit.pos_embed
    attn = None
    for blk in vit.blocks:
        a = blk.attn
        h = blk.norm1(t)
        qkv = F.linear(rnd(h), rnd(a.qkv.weight), a.qkv.bias)
        N, C = t.shape[1], t.shape[2]
        qkv = qkv.reshape(Bn, N, 3, a.heads, C // a.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((rnd(q) @ rnd(k).transpose(-2, -1)) * a.scale).softmax(dim=-1)
        y = (rnd(attn) @ rnd(v)).transpose(1, 2).reshape(Bn, N, C)
        t = t + F.linear(rnd(y), rnd(a.proj.weight), a.proj.bias)
        h = blk.norm2(t)
        m = blk.mlp
        h = F.gelu(F.linear(rnd(h), rnd(m.fc1.weight), m.fc1.bias))
        t = t + F.linear(rnd(h), rnd(m.fc2.weight), m.fc2.bias)
    return vit.norm(t), attn


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def main():
    torch.set_num_threads(2)
    vit = ViT(IMG, PATCH, DIM, DEPTH, HEADS, HIDDEN)
    fill_params(Dino(vit, nn.Identity()))
    vit.eval()
    x = torch.from_numpy(fill((B, 3, IMG, IMG), IMG_SEED + 16 * CASE, -2.0, 2.0))
    with torch.no_grad():
        tok32, _, attn32 = vit(x)
        mine32, _ = ours(vit, x, lambda z: z)
        assert rel(mine32, tok32) < 1e-5, "the restated forward must equal the model in fp32"
        tok_mixed, attn_mixed = ours(vit, x, bf16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            tok_ac, _, attn_ac = vit(x)
        tok_ac, attn_ac = tok_ac.float(), attn_ac.float()
    print(f"autocast vs fp32:         tokens {rel(tok_ac, tok32):.3g}")
    print(f"dino.c-bf16 vs fp32:      tokens {rel(tok_mixed, tok32):.3g}")
    print(f"dino.c-bf16 vs autocast:  tokens {rel(tok_mixed, tok_ac):.3g}, "
          f"attention {rel(attn_mixed, attn_ac):.3g}")
    cos = F.cosine_similarity(tok_mixed[:, 0], tok32[:, 0], dim=-1)
    print(f"CLS cosine dino.c-bf16 vs fp32: min {float(cos.min()):.6f}")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "bf16_vit.dfx")
    # The last block's attention of the CLS query only (B, heads, tokens): small.
    write(path, {"tokens_fp32": tok32, "attn_cls_fp32": attn32[:, :, 0], "tokens_mixed": tok_mixed,
                 "attn_cls_mixed": attn_mixed[:, :, 0], "tokens_autocast": tok_ac,
                 "attn_cls_autocast": attn_ac[:, :, 0]})
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
