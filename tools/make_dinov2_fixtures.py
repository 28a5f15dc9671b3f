"""Writes the DINOv2 fixtures of tests/test_dinov2.c.

Small random DINOv2 backbones (D=32, depth 2, 2 heads, patch 14, trained size
56 px = a 4x4 grid) saved as the official releases are (a .pth of the flat
backbone state dict: cls_token, pos_embed, register_tokens, mask_token,
patch_embed.*, blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2,
mlp.fc1|w12, mlp.fc2|w3, ls2.gamma}, norm.*) and as Hugging Face's Dinov2Model
/ Dinov2WithRegistersModel save them (save_pretrained's model.safetensors):
  dinov2_plain.pth / dinov2_plain_hf.safetensors     no registers, GELU MLP
  dinov2_reg.pth   / dinov2_reg_hf.safetensors       4 registers
  dinov2_swiglu.pth / dinov2_swiglu_hf.safetensors   SwiGLU MLP (ViT-g's), no registers

Expected outputs (dinov2.dfx) for images fill((2, 3, H, W), IMG_SEED + k, -1, 1)
at the trained size, a smaller non-square size and a larger one:
  <model>/<src>/<HxW>/tokens  (2, 1 + patches, D) final-norm CLS and patch tokens
  <model>/<src>/<HxW>/regs    (2, R, D) final-norm registers (models with registers)
  <model>/<src>/<HxW>/attn    (2, heads, 1 + patches, 1 + patches) last-block attention
                              among CLS and patches (register rows and columns dropped)
  <model>/<src>/<HxW>/inter0  (2, 1 + patches, D) block 0's output through the final norm
src is "pth" (the official code) or "hf" (transformers).
And the antialiased bicubic resize alone at the sizes of real models: a
37x37 grid of 4 channels, fill((1, 4, 37, 37), RESAMPLE_SEED, -1, 1), resized
by F.interpolate(size=..., mode="bicubic", antialias=True):
  resample/<h>x<w>            (1, 4, h, w) for 16x16 (518 -> 224 px), 16x23, 40x45

The official forward is restated below from facebookresearch/dinov2
(dinov2/models/vision_transformer.py, dinov2/layers/): registers go right
after CLS once position embeddings are added; position embeddings are resized
with F.interpolate(mode="bicubic") by scale_factor (n + 0.1)/M without
antialiasing for the models without registers, by output size with
antialias=True for the models with registers (dinov2/hub/backbones.py).
transformers resizes by output size without antialiasing for Dinov2Model and
as the official code for Dinov2WithRegistersModel. The script checks the
restatement against transformers where the two agree before writing.

Run: PY=$(tools/venv.sh); $PY -m pip install transformers; $PY tools/make_dinov2_fixtures.py
"""
import math
import os
import shutil
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
D, DEPTH, HEADS, P, IMG = 32, 2, 2, 14, 56
IMG_SEED = 9100
RESAMPLE_SEED = 9200
SIZES = [(56, 56), (28, 42), (70, 84)]  # trained grid, shrunk non-square, grown non-square


def make_state(seed, n_reg, swiglu):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=0.1):
        return (torch.randn(*shape, generator=g) * s).float()

    grid = IMG // P
    sd = {"cls_token": r(1, 1, D, s=0.5), "pos_embed": r(1, 1 + grid * grid, D, s=0.5)}
    if n_reg:
        sd["register_tokens"] = r(1, n_reg, D, s=0.5)
    sd["mask_token"] = r(1, D)
    sd["patch_embed.proj.weight"] = r(D, 3, P, P, s=0.05)
    sd["patch_embed.proj.bias"] = r(D)
    hid = (int(D * 4 * 2 / 3) + 7) // 8 * 8 if swiglu else 2 * D
    for i in range(DEPTH):
        b = f"blocks.{i}."
        sd[b + "norm1.weight"] = 1 + r(D)
        sd[b + "norm1.bias"] = r(D)
        sd[b + "attn.qkv.weight"] = r(3 * D, D, s=0.3)
        sd[b + "attn.qkv.bias"] = r(3 * D)
        sd[b + "attn.proj.weight"] = r(D, D, s=0.2)
        sd[b + "attn.proj.bias"] = r(D)
        sd[b + "ls1.gamma"] = 0.2 + torch.rand(D, generator=g)
        sd[b + "norm2.weight"] = 1 + r(D)
        sd[b + "norm2.bias"] = r(D)
        if swiglu:
            sd[b + "mlp.w12.weight"] = r(2 * hid, D, s=0.2)
            sd[b + "mlp.w12.bias"] = r(2 * hid)
            sd[b + "mlp.w3.weight"] = r(D, hid, s=0.2)
            sd[b + "mlp.w3.bias"] = r(D)
        else:
            sd[b + "mlp.fc1.weight"] = r(hid, D, s=0.2)
            sd[b + "mlp.fc1.bias"] = r(hid)
            sd[b + "mlp.fc2.weight"] = r(D, hid, s=0.2)
            sd[b + "mlp.fc2.bias"] = r(D)
        sd[b + "ls2.gamma"] = 0.2 + torch.rand(D, generator=g)
    sd["norm.weight"] = 1 + r(D)
    sd["norm.bias"] = r(D)
    return sd, hid


def official_pos(sd, h, w, n_reg):
    """DinoVisionTransformer.interpolate_pos_encoding (h, w: the image's)."""
    pos = sd["pos_embed"]
    N = pos.shape[1] - 1
    h0, w0 = h // P, w // P
    if h0 * w0 == N and h == w:
        return pos
    M = int(math.sqrt(N))
    grid = pos[:, 1:].reshape(1, M, M, D).permute(0, 3, 1, 2)
    if n_reg:  # interpolate_offset 0, interpolate_antialias True
        out = F.interpolate(grid, size=(h0, w0), mode="bicubic", antialias=True)
    else:  # interpolate_offset 0.1, no antialiasing
        out = F.interpolate(grid, scale_factor=((h0 + 0.1) / M, (w0 + 0.1) / M), mode="bicubic",
                            antialias=False)
    assert out.shape[-2:] == (h0, w0)
    return torch.cat((pos[:, :1], out.permute(0, 2, 3, 1).reshape(1, -1, D)), dim=1)


def official_forward(sd, x, n_reg, swiglu):
    """Final-norm tokens in the reference order [CLS, registers, patches], the
    last block's attention and block 0's output (not normed)."""
    B, _, h, w = x.shape
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=P)
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat((sd["cls_token"].expand(B, -1, -1), t), dim=1)
    t = t + official_pos(sd, h, w, n_reg)
    if n_reg:
        t = torch.cat((t[:, :1], sd["register_tokens"].expand(B, -1, -1), t[:, 1:]), dim=1)
    hd = D // HEADS
    blocks = []
    for i in range(DEPTH):
        b = f"blocks.{i}."
        y = F.layer_norm(t, (D,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], 1e-6)
        N = y.shape[1]
        qkv = F.linear(y, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"])
        qkv = qkv.reshape(B, N, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * hd ** -0.5, qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, N, D)
        y = F.linear(y, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        t = t + y * sd[b + "ls1.gamma"]
        y = F.layer_norm(t, (D,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], 1e-6)
        if swiglu:  # SwiGLUFFNFused
            x1, x2 = F.linear(y, sd[b + "mlp.w12.weight"], sd[b + "mlp.w12.bias"]).chunk(2, dim=-1)
            y = F.linear(F.silu(x1) * x2, sd[b + "mlp.w3.weight"], sd[b + "mlp.w3.bias"])
        else:
            y = F.linear(F.gelu(F.linear(y, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
                         sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        t = t + y * sd[b + "ls2.gamma"]
        blocks.append(t)
    out = F.layer_norm(t, (D,), sd["norm.weight"], sd["norm.bias"], 1e-6)
    return out, att, blocks[0]


def hf_names(sd, swiglu):
    """Official names -> the Hugging Face hub's (Dinov2Model.save_pretrained)."""
    h = {"embeddings.cls_token": sd["cls_token"], "embeddings.mask_token": sd["mask_token"],
         "embeddings.position_embeddings": sd["pos_embed"],
         "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
         "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
         "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"]}
    if "register_tokens" in sd:
        h["embeddings.register_tokens"] = sd["register_tokens"]
    for i in range(DEPTH):
        s, p = f"blocks.{i}.", f"encoder.layer.{i}."
        for nm, w, bb in zip(("query", "key", "value"), sd[s + "attn.qkv.weight"].split(D),
                             sd[s + "attn.qkv.bias"].split(D)):
            h[p + f"attention.attention.{nm}.weight"] = w.clone()
            h[p + f"attention.attention.{nm}.bias"] = bb.clone()
        h[p + "attention.output.dense.weight"] = sd[s + "attn.proj.weight"]
        h[p + "attention.output.dense.bias"] = sd[s + "attn.proj.bias"]
        for a, b in (("norm1", "norm1"), ("norm2", "norm2")):
            h[p + a + ".weight"] = sd[s + b + ".weight"]
            h[p + a + ".bias"] = sd[s + b + ".bias"]
        h[p + "layer_scale1.lambda1"] = sd[s + "ls1.gamma"]
        h[p + "layer_scale2.lambda1"] = sd[s + "ls2.gamma"]
        pairs = (("weights_in", "w12"), ("weights_out", "w3")) if swiglu else (("fc1", "fc1"), ("fc2", "fc2"))
        for a, b in pairs:
            h[p + f"mlp.{a}.weight"] = sd[s + f"mlp.{b}.weight"]
            h[p + f"mlp.{a}.bias"] = sd[s + f"mlp.{b}.bias"]
    return h


def hf_model(sd, n_reg, swiglu):
    """transformers' model holding sd, and the bytes save_pretrained writes."""
    from safetensors.torch import load_file, save_file
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel
    kw = dict(hidden_size=D, num_hidden_layers=DEPTH, num_attention_heads=HEADS, mlp_ratio=4 if swiglu else 2,
              image_size=IMG, patch_size=P, layerscale_value=1.0, layer_norm_eps=1e-6,
              use_swiglu_ffn=swiglu, hidden_act="gelu")
    if n_reg:
        m = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=n_reg, **kw))
    else:
        m = Dinov2Model(Dinov2Config(**kw))
    m.eval()
    with tempfile.TemporaryDirectory() as td:
        # Let transformers map the hub names onto its modules, as from_pretrained does.
        m.save_pretrained(td)
        hub = hf_names(sd, swiglu)
        written = load_file(os.path.join(td, "model.safetensors"))
        assert set(written) == set(hub), sorted(set(written) ^ set(hub))
        save_file({k: v.contiguous() for k, v in hub.items()}, os.path.join(td, "model.safetensors"),
                  metadata={"format": "pt"})
        cls = Dinov2WithRegistersModel if n_reg else Dinov2Model
        m = cls.from_pretrained(td, attn_implementation="eager").eval()
        with open(os.path.join(td, "model.safetensors"), "rb") as f:
            data = f.read()
    return m, data


def timm_check(sd, n_reg, swiglu):
    """timm's port (its _convert_dinov2 of the official weights) gives the
    restatement's tokens: at every size with registers (timm resizes by
    output size with antialiasing, as the official _reg models), at the
    trained size without. tests/test_dinov2.c loads that layout."""
    import timm.models.vision_transformer as tv
    from timm.layers import SwiGLUPacked
    kw = dict(img_size=IMG, patch_size=P, embed_dim=D, depth=DEPTH, num_heads=HEADS, init_values=1e-5,
              dynamic_img_size=True, num_classes=0, global_pool="token")
    if n_reg:
        kw.update(reg_tokens=n_reg, no_embed_class=True)
    if swiglu:
        kw.update(mlp_ratio=2 * 88 / D, mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU)
    else:
        kw.update(mlp_ratio=2)
    m = tv.VisionTransformer(**kw).eval()
    m.load_state_dict(tv._convert_dinov2(dict(sd), m), strict=True)
    for k, (h, w) in enumerate(SIZES if n_reg else SIZES[:1]):
        x = torch.from_numpy(fill((2, 3, h, w), IMG_SEED + k, -1.0, 1.0))
        out, _, _ = official_forward(sd, x, n_reg, swiglu)
        e = close(m.forward_features(x), out, f"timm vs the restatement at {h}x{w}")
        print(f"timm's port agrees at {h}x{w} (max {e:.2e})")


def drop_regs_tokens(out, n_reg):
    return torch.cat((out[:, :1], out[:, 1 + n_reg:]), dim=1)


def drop_regs_attn(att, n_reg):
    keep = [0] + list(range(1 + n_reg, att.shape[-1]))
    return att[:, :, keep][:, :, :, keep]


def close(a, b, what, tol=2e-5):
    err = (a - b).abs().max().item()
    assert err <= tol, f"{what}: max error {err}"
    return err


def main():
    torch.set_grad_enabled(False)
    expect = {}
    models = [("plain", 0, False, 11), ("reg", 4, False, 12), ("swiglu", 0, True, 13)]
    for name, n_reg, swiglu, seed in models:
        sd, hid = make_state(seed, n_reg, swiglu)
        torch.save(sd, os.path.join(OUT, f"dinov2_{name}.pth"))
        if n_reg or swiglu:
            timm_check(sd, n_reg, swiglu)
        hf, data = hf_model(sd, n_reg, swiglu)
        with open(os.path.join(OUT, f"dinov2_{name}_hf.safetensors"), "wb") as f:
            f.write(data)
        for k, (h, w) in enumerate(SIZES):
            x = torch.from_numpy(fill((2, 3, h, w), IMG_SEED + k, -1.0, 1.0))
            out, att, blk0 = official_forward(sd, x, n_reg, swiglu)
            tag = f"{name}/pth/{h}x{w}"
            expect[tag + "/tokens"] = drop_regs_tokens(out, n_reg)
            if n_reg:
                expect[tag + "/regs"] = out[:, 1:1 + n_reg]
            expect[tag + "/attn"] = drop_regs_attn(att, n_reg)
            inter = F.layer_norm(blk0, (D,), sd["norm.weight"], sd["norm.bias"], 1e-6)
            expect[tag + "/inter0"] = drop_regs_tokens(inter, n_reg)
            r = hf(pixel_values=x, output_attentions=True, output_hidden_states=True)
            hout, hatt = r.last_hidden_state, r.attentions[-1]
            hinter = hf.layernorm(r.hidden_states[1])
            same = n_reg or (h == w and h == IMG)  # where the two resize position embeddings alike
            if same:
                e = close(hout, out, f"{tag}: transformers vs the official restatement")
                close(hatt, att, f"{tag}: attention, transformers vs the restatement")
                print(f"{tag}: transformers agrees with the restatement (max {e:.2e})")
            tag = f"{name}/hf/{h}x{w}"
            expect[tag + "/tokens"] = drop_regs_tokens(hout, n_reg)
            if n_reg:
                expect[tag + "/regs"] = hout[:, 1:1 + n_reg]
            expect[tag + "/attn"] = drop_regs_attn(hatt, n_reg)
            expect[tag + "/inter0"] = drop_regs_tokens(hinter, n_reg)
        print(f"{name}: mlp hidden {hid}, registers {n_reg}")
    grid = torch.from_numpy(fill((1, 4, 37, 37), RESAMPLE_SEED, -1.0, 1.0))
    for h, w in ((16, 16), (16, 23), (40, 45)):
        expect[f"resample/{h}x{w}"] = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True)
    write(os.path.join(OUT, "dinov2.dfx"), expect)
    import transformers
    print("wrote dinov2_*.pth, dinov2_*_hf.safetensors, dinov2.dfx with torch", torch.__version__,
          "transformers", transformers.__version__)


if __name__ == "__main__":
    main()
