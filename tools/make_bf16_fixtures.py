"""Writes tests/fixtures/bf16_vit.dfx for tests/test_bf16.c: a small ViT's
outputs in fp32, under PyTorch's CPU autocast in bf16, and under the
mixed precision dino.c implements (docs/ENGINE.md, "bf16 mode"), restated
here in PyTorch: every Linear (patch embedding included) and both attention
matmuls take bf16-rounded inputs and sum in fp32; the bias, LayerNorm,
softmax, GELU and the residual stream stay fp32. Autocast differs from that
in rounding each Linear/matmul output to bf16 and running LayerNorm, softmax
and GELU on bf16 tensors; the script prints how far apart the two are, which
is what the C test's autocast tolerance is set from.

For training it also stores the gradients of a few parameters for the loss
sum(tokens · Rt), Rt = fill(RT_SEED + CASE), under the same mixed precision
in the backward pass: each Linear's and attention matmul's input and weight
gradients are products of bf16-rounded operands (the incoming gradient
rounded too) summed in fp32; the softmax, LayerNorm and GELU backward,
the bias gradients and the residual sums stay fp32.

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
from make_engine_fixtures import IMG_SEED, OUT, RT_SEED, Dino, ViT, fill_params  # noqa: E402

# The model of the C test: D=96, 3 blocks, 3 heads, MLP 384, 64-px images,
# patch 8 (65 tokens: not a multiple of the attention kernel's tiles).
DIM, DEPTH, HEADS, HIDDEN, IMG, PATCH, B = 96, 3, 3, 384, 64, 8, 2
CASE = 20  # image seed IMG_SEED + 16*CASE


def bf16(x):
    """x rounded to bf16 (nearest even), in x's own dtype."""
    return x.to(torch.bfloat16).to(x.dtype)


# A few parameters of every kind (all of them would make a large file).
GRADS = ["blocks.0.attn.proj.weight", "pos_embed", "cls_token", "blocks.1.norm1.weight",
         "blocks.2.attn.proj.bias", "patch_embed.proj.bias"]


class MixedMatmul(torch.autograd.Function):
    """a @ b on bf16-rounded operands; the backward's products round theirs too."""

    @staticmethod
    def forward(ctx, a, b):
        ar, br = bf16(a), bf16(b)
        ctx.save_for_backward(ar, br)
        return ar @ br

    @staticmethod
    def backward(ctx, dy):
        ar, br = ctx.saved_tensors
        dyr = bf16(dy)
        return dyr @ br.transpose(-2, -1), ar.transpose(-2, -1) @ dyr


def mixed_linear(x, w, b):
    return MixedMatmul.apply(x, w.t()) + b


def ours_train(vit, x):
    """ours() with the mixed backward (differentiable; patch embedding as a Linear on patches)."""
    Bn = x.shape[0]
    cols = F.unfold(x, PATCH, stride=PATCH).transpose(1, 2)  # (B, L, C·p·p), (c, ky, kx) order
    w = vit.patch_embed.proj.weight
    t = mixed_linear(cols, w.reshape(w.shape[0], -1), vit.patch_embed.proj.bias)
    t = torch.cat((vit.cls_token.expand(Bn, -1, -1), t), dim=1) + vit.pos_embed
    for blk in vit.blocks:
        a = blk.attn
        qkv = mixed_linear(blk.norm1(t), a.qkv.weight, a.qkv.bias)
        N, C = t.shape[1], t.shape[2]
        qkv = qkv.reshape(Bn, N, 3, a.heads, C // a.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (MixedMatmul.apply(q, k.transpose(-2, -1)) * a.scale).softmax(dim=-1)
        y = MixedMatmul.apply(attn, v).transpose(1, 2).reshape(Bn, N, C)
        t = t + mixed_linear(y, a.proj.weight, a.proj.bias)
        m = blk.mlp
        t = t + mixed_linear(F.gelu(mixed_linear(blk.norm2(t), m.fc1.weight, m.fc1.bias)), m.fc2.weight,
                             m.fc2.bias)
    return vit.norm(t)


def mixed_grads(vit, x, Rt):
    vit.zero_grad(set_to_none=True)
    (ours_train(vit, x) * Rt).sum().backward()
    named = dict(vit.named_parameters())
    return {n: named[n].grad.detach().clone() for n in GRADS}


def rms(a, b):
    return float(((a - b) ** 2).mean().sqrt() / (b ** 2).mean().sqrt())


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
    Rt = torch.from_numpy(fill(tuple(tok32.shape), RT_SEED + CASE, -1.0, 1.0))
    g = mixed_grads(vit, x, Rt)
    vit64 = ViT(IMG, PATCH, DIM, DEPTH, HEADS, HIDDEN)
    vit64.load_state_dict(vit.state_dict())
    vit64 = vit64.double()
    g64 = mixed_grads(vit64, x.double(), Rt.double())
    vit.zero_grad(set_to_none=True)
    tok, _, _ = vit(x)
    (tok * Rt).sum().backward()
    g32 = {n: p.grad for n, p in vit.named_parameters() if n in GRADS}
    for n in GRADS:
        print(f"grad {n}: mixed vs fp32 RMS {rms(g[n], g32[n]):.3g}, "
              f"mixed fp32-sums vs double-sums RMS {rms(g[n], g64[n].float()):.3g}")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "bf16_vit.dfx")
    # The last block's attention of the CLS query only (B, heads, tokens): small.
    write(path, {"tokens_fp32": tok32, "attn_cls_fp32": attn32[:, :, 0], "tokens_mixed": tok_mixed,
                 "attn_cls_mixed": attn_mixed[:, :, 0], "tokens_autocast": tok_ac,
                 "attn_cls_autocast": attn_ac[:, :, 0],
                 **{f"grad_mixed.{n}": g[n] for n in GRADS}})
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
