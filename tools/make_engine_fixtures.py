"""Writes the reference fixtures of the engine tests (tests/test_vit.c, tests/test_model.c).

The model is DINO's (docs/DINO.md §1-§3) written out in PyTorch: ViT with DINO's
interpolate_pos_encoding (bicubic, scale_factor=(n+0.1)/sqrt(N), no
recompute_scale_factor), DINOHead with the old weight_norm, MultiCropWrapper.
The script checks the ViT against timm's VisionTransformer where both apply
(square inputs at the trained size) before writing anything.

Values are regenerated in C with fixture_fill, so only outputs and gradients
are stored:
  parameter i of the model table (backbone.* then head.*, state_dict order)
      = fill(shape, PARAM_SEED + i, lo, hi) with (lo, hi) from param_range();
  input images of case k = fill(shape, IMG_SEED + 16*k + group, -2, 2);
  loss weights R (head logits) = fill(shape, R_SEED + k, -1, 1) and
  Rt (final-norm tokens)       = fill(shape, RT_SEED + k, -1, 1).
The scalar loss is sum(logits*R) (+ sum(tokens*Rt) for the single-pass cases),
so dL/dlogits = R and dL/dtokens = Rt.

Run: PY=$(tools/venv.sh); $PY tools/make_engine_fixtures.py
"""
import math
import os
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402

PARAM_SEED = 1000
IMG_SEED = 5000
R_SEED = 7000
RT_SEED = 8000
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def param_range(name, shape):
    """Fill range of a parameter; tests/engine_fill.h has the same rule."""
    if name.endswith("weight_g"):
        return 0.5, 1.5
    if name.endswith(".bias"):
        return -0.1, 0.1
    if len(shape) == 1:  # LayerNorm weight
        return 0.5, 1.5
    if name.endswith("cls_token") or name.endswith("pos_embed"):
        return -0.5, 0.5
    fan_in = int(np.prod(shape)) // shape[0]
    a = float(np.float32(1.0 / math.sqrt(fan_in)))
    return -a, a


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x), attn


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x, s1=None, s2=None):
        # s1, s2: per-sample drop-path factors (0 or 1/keep), as DropPath's x/keep*mask.
        y, attn = self.attn(self.norm1(x))
        x = x + (y if s1 is None else y * s1[:, None, None])
        y = self.mlp(self.norm2(x))
        x = x + (y if s2 is None else y * s2[:, None, None])
        return x, attn


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)


class ViT(nn.Module):
    def __init__(self, img_size, patch, dim, depth, heads, hidden, in_chans=3):
        super().__init__()
        self.patch = patch
        n = (img_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.patch_embed = PatchEmbed(patch, in_chans, dim)
        self.blocks = nn.ModuleList([Block(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def interpolate_pos_encoding(self, x, w, h):
        # DINO's code (docs/DINO.md §1): w, h are image dims 2 and 3.
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        class_pos_embed = self.pos_embed[:, 0]
        patch_pos_embed = self.pos_embed[:, 1:]
        dim = x.shape[-1]
        w0 = w // self.patch
        h0 = h // self.patch
        w0, h0 = w0 + 0.1, h0 + 0.1
        patch_pos_embed = F.interpolate(
            patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
            scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)),
            mode="bicubic",
        )
        assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)

    def forward(self, x, drop=None):
        """Returns (final-norm tokens, list of block outputs, last attention)."""
        B, _, w, h = x.shape
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat((self.cls_token.expand(B, -1, -1), t), dim=1)
        t = t + self.interpolate_pos_encoding(t, w, h)
        outs, attn = [], None
        for i, blk in enumerate(self.blocks):
            s1 = s2 = None
            if drop is not None:
                s1, s2 = drop[i, 0], drop[i, 1]
            t, attn = blk(t, s1, s2)
            outs.append(t)
        return self.norm(t), outs, attn


class DINOHead(nn.Module):
    def __init__(self, in_dim, out_dim, norm_last_layer=True, nlayers=3, hidden_dim=2048,
                 bottleneck_dim=256, use_bn=False):
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            # use_bn: a BatchNorm1d between each hidden Linear and its GELU
            hidden = [nn.BatchNorm1d(hidden_dim)] if use_bn else []
            layers = [nn.Linear(in_dim, hidden_dim), *hidden, nn.GELU()]
            for _ in range(nlayers - 2):
                hidden = [nn.BatchNorm1d(hidden_dim)] if use_bn else []
                layers += [nn.Linear(hidden_dim, hidden_dim), *hidden, nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


class Dino(nn.Module):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def multicrop(self, crops, drops, with_features=False):
        """MultiCropWrapper: groups of equal width in one pass, head once
        (with_features: also the CLS features, crop-major)."""
        widths = torch.tensor([c.shape[-1] for c in crops])
        idx_crops = torch.cumsum(torch.unique_consecutive(widths, return_counts=True)[1], 0)
        start, feats = 0, []
        for gi, end in enumerate(idx_crops.tolist()):
            tok, _, _ = self.backbone(torch.cat(crops[start:end]), drops[gi])
            feats.append(tok[:, 0])
            start = end
        feats = torch.cat(feats)
        out = self.head(feats)
        return (out, feats) if with_features else out


def fill_params(model):
    names = []
    with torch.no_grad():
        # BatchNorm's num_batches_tracked is no table entry (momentum is fixed)
        items = [(k, v) for k, v in model.state_dict(keep_vars=True).items()
                 if not k.endswith("num_batches_tracked")]
        for i, (name, p) in enumerate(items):
            lo, hi = param_range(name, tuple(p.shape))
            p.copy_(torch.from_numpy(fill(tuple(p.shape), PARAM_SEED + i, lo, hi)))
            names.append(name)
    return names


def drop_scales(depth, B, keep, seed):
    """(depth, 2, B) factors 0 or 1/keep from a fixed pattern (stored in the fixture)."""
    u = fill((depth, 2, B), seed, 0.0, 1.0)
    return np.where(u < keep, np.float32(1.0 / keep), np.float32(0.0)).astype(np.float32)


def single_case(out, tag, model, k, shape, drop=None, inter=2):
    """One backbone pass + head on the CLS tokens; loss sum(logits R) + sum(tokens Rt)."""
    model.zero_grad(set_to_none=True)
    x = torch.from_numpy(fill(shape, IMG_SEED + 16 * k, -2.0, 2.0)).requires_grad_(True)
    d = None if drop is None else torch.from_numpy(drop)
    tok, outs, attn = model.backbone(x, d)
    logits = model.head(tok[:, 0])
    R = torch.from_numpy(fill(tuple(logits.shape), R_SEED + k, -1.0, 1.0))
    Rt = torch.from_numpy(fill(tuple(tok.shape), RT_SEED + k, -1.0, 1.0))
    loss = (logits * R).sum() + (tok * Rt).sum()
    loss.backward()
    with torch.no_grad():
        inter_t = torch.stack([model.backbone.norm(o) for o in outs[-inter:]])
    out[f"{tag}.tokens"] = tok
    out[f"{tag}.attn"] = attn
    out[f"{tag}.inter"] = inter_t
    out[f"{tag}.logits"] = logits
    out[f"{tag}.dimages"] = x.grad
    if drop is not None:
        out[f"{tag}.drop"] = drop
    grads(out, tag, model)


def grads(out, tag, model):
    for name, p in model.named_parameters():
        if p.requires_grad:
            out[f"{tag}.grad.{name}"] = p.grad if p.grad is not None else torch.zeros_like(p)


def tiny_model(img_size, patch, norm_last_layer, nlayers=3):
    torch.manual_seed(0)
    vit = ViT(img_size, patch, 48, 2, 3, 192)
    head = DINOHead(48, 64, norm_last_layer=norm_last_layer, nlayers=nlayers, hidden_dim=32,
                    bottleneck_dim=16)
    m = Dino(vit, head)
    fill_params(m)
    return m


def check_against_timm(m, img_size, patch, dim, depth, heads, x):
    import timm.models.vision_transformer as tv
    t = tv.VisionTransformer(img_size=img_size, patch_size=patch, embed_dim=dim, depth=depth,
                             num_heads=heads, mlp_ratio=4, qkv_bias=True, num_classes=0,
                             norm_layer=partial(nn.LayerNorm, eps=1e-6))
    sd = {k[len("backbone."):]: v for k, v in m.state_dict().items() if k.startswith("backbone.")}
    t.load_state_dict(sd, strict=True)
    t.eval()
    with torch.no_grad():
        a = t.forward_features(x)
        b = m.backbone(x)[0]
    err = (a - b).abs().max().item()
    print(f"  timm check {img_size}/{patch}: max |timm - ours| = {err:.3g}")
    assert err < 1e-4 * max(1.0, b.abs().max().item()), err


def make_p4():
    out = {}
    B = 2
    # Case a: 16x16 (stored grid, no interpolation), norm_last_layer true, no drop path.
    m = tiny_model(16, 4, True)
    check_against_timm(m, 16, 4, 48, 2, 3, torch.from_numpy(fill((B, 3, 16, 16), 99, -2, 2)))
    single_case(out, "a", m, 0, (B, 3, 16, 16))
    # Case b: 24x16 (non-square: interpolated to 6x4), norm_last_layer false, drop path.
    m = tiny_model(16, 4, False)
    single_case(out, "b", m, 1, (B, 3, 24, 16), drop=drop_scales(2, B, 0.75, 11))
    # Case c: 32x32 (square, interpolated 4x4 -> 8x8), forward and grads, no drop path.
    single_case(out, "c", m, 2, (B, 3, 32, 32))
    # Multi-crop: 2 crops of 32 and 3 crops of 16 per image, drop path in both groups,
    # norm_last_layer false; loss sum(logits R).
    m.zero_grad(set_to_none=True)
    crops = [torch.from_numpy(fill((B, 3, 32, 32), IMG_SEED + 16 * 3 + c, -2, 2)) for c in range(2)]
    crops += [torch.from_numpy(fill((B, 3, 16, 16), IMG_SEED + 16 * 3 + 2 + c, -2, 2))
              for c in range(3)]
    d0 = drop_scales(2, 2 * B, 0.8, 12)
    d1 = drop_scales(2, 3 * B, 0.8, 13)
    logits = m.multicrop(crops, [torch.from_numpy(d0), torch.from_numpy(d1)])
    R = torch.from_numpy(fill(tuple(logits.shape), R_SEED + 3, -1.0, 1.0))
    (logits * R).sum().backward()
    out["mc.logits"] = logits
    out["mc.drop0"] = d0
    out["mc.drop1"] = d1
    grads(out, "mc", m)
    write(os.path.join(OUT, "engine_p4.dfx"), out)


def make_p16():
    out = {}
    B = 2
    m = tiny_model(64, 16, True, nlayers=1)
    check_against_timm(m, 64, 16, 48, 2, 3, torch.from_numpy(fill((B, 3, 64, 64), 98, -2, 2)))
    single_case(out, "a", m, 4, (B, 3, 64, 64))
    single_case(out, "b", m, 5, (B, 3, 48, 80), drop=drop_scales(2, B, 0.5, 14))
    write(os.path.join(OUT, "engine_p16.dfx"), out)


def make_vits16():
    out = {}
    vit = ViT(224, 16, 384, 12, 6, 1536)
    m = Dino(vit, nn.Identity())
    fill_params(m)
    vit.eval()
    check_against_timm(m, 224, 16, 384, 12, 6, torch.from_numpy(fill((1, 3, 224, 224), 97, -2, 2)))
    for k, (tag, B, H, W) in enumerate([("s224", 2, 224, 224), ("s96", 2, 96, 96),
                                        ("s160x224", 1, 160, 224)]):
        x = torch.from_numpy(fill((B, 3, H, W), IMG_SEED + 16 * (10 + k), -2.0, 2.0))
        with torch.no_grad():
            tok, outs, attn = vit(x)
            inter = torch.stack([vit.norm(o) for o in outs[-4:]])
        out[f"{tag}.cls"] = tok[:, 0]
        out[f"{tag}.tokens8"] = tok[:, :8]
        out[f"{tag}.attn_cls"] = attn[:, :, 0, :]
        out[f"{tag}.inter_cls"] = inter[:, :, 0]
    write(os.path.join(OUT, "engine_vits16.dfx"), out)


if __name__ == "__main__":
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    make_p4()
    make_p16()
    make_vits16()
    for f in sorted(os.listdir(OUT)):
        if f.startswith("engine_"):
            print(f"{f}: {os.path.getsize(os.path.join(OUT, f))} bytes")
