"""Writes the DINOv3 fixtures of tests/test_dinov3.c.

Small random DINOv3 backbones (D=64, depth 2, 4 heads so head_dim 16,
patch 16, 4 storage tokens, LayerScale, LayerNorm eps 1e-5, axial RoPE base
100) built with transformers' DINOv3ViTModel, and the same weights as the
official code's state dict (facebookresearch/dinov3,
dinov3/models/vision_transformer.py with dinov3/layers/), loaded into the
official DinoVisionTransformer with strict=True so every name and shape is
the official one:
  dinov3_mlp.pth    / dinov3_mlp_hf.safetensors      GELU MLP (hidden 128), as ViT-S/B/L
  dinov3_swiglu.pth / dinov3_swiglu_hf.safetensors   SwiGLU (w1, w2, w3; hidden 128), as S+/H+/7B

The .pth files hold what the official checkpoints hold: cls_token,
storage_tokens, mask_token (1, D), patch_embed.proj.*, rope_embed.periods,
blocks.i.{norm1, attn.qkv.{weight,bias,bias_mask}, attn.proj, ls1.gamma,
norm2, mlp.fc1/fc2 or mlp.w1/w2/w3, ls2.gamma}, norm.*. Their key bias is
random and non-zero, and bias_mask zeroes it (mask_k_bias), as in the
official forward; Hugging Face's k_proj has no bias. The SwiGLU .pth also
carries local_cls_norm.* (untie_global_and_local_cls_norm, ViT-7B's, used in
training only). The swiglu safetensors file has the hub's names (layer.N.*, what
save_pretrained writes), the mlp one transformers 5's module names
(model.layer.N.*).

Expected outputs (dinov3.dfx) for images fill((2, 3, H, W), IMG_SEED + k, -1, 1)
at 64x64 and the non-square 48x80 and 80x32, in dino.c's token layout
(CLS, then patches; storage tokens apart):
  <model>/<src>/<HxW>/tokens  (2, 1 + patches, D) final-norm CLS and patch tokens
  <model>/<src>/<HxW>/regs    (2, 4, D) final-norm storage tokens
  <model>/<src>/<HxW>/attn    (2, heads, 1 + patches, 1 + patches) last-block attention
                              probabilities, storage rows and columns dropped
  <model>/<src>/<HxW>/inter0  (2, 1 + patches, D) block 0's output through the final norm
src "pth": the official code (attention recomputed from the last block's
input with its own qkv and apply_rope, as its SDPA does); src "hf":
transformers (eager attention). The two are checked against each other.

Run: DINOV3_REPO=<checkout of facebookresearch/dinov3> PY=$(tools/venv.sh);
     $PY -m pip install transformers; $PY tools/make_dinov3_fixtures.py
"""
import os
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
D, DEPTH, HEADS, P, NREG, HID = 64, 2, 4, 16, 4, 128
IMG_SEED = 9300
SIZES = [(64, 64), (48, 80), (80, 32)]


def official_module():
    repo = os.environ.get("DINOV3_REPO")
    if not repo or not os.path.isdir(os.path.join(repo, "dinov3")):
        sys.exit("set DINOV3_REPO to a checkout of facebookresearch/dinov3")
    sys.path.insert(0, repo)
    from dinov3.models.vision_transformer import DinoVisionTransformer
    return DinoVisionTransformer


def hf_model(seed, swiglu):
    from transformers import DINOv3ViTConfig, DINOv3ViTModel
    cfg = DINOv3ViTConfig(hidden_size=D, intermediate_size=HID, num_hidden_layers=DEPTH,
                          num_attention_heads=HEADS, patch_size=P, image_size=224,
                          num_register_tokens=NREG, layer_norm_eps=1e-5, rope_theta=100.0,
                          use_gated_mlp=swiglu, hidden_act="silu" if swiglu else "gelu",
                          layerscale_value=1.0)
    m = DINOv3ViTModel(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if name.endswith("lambda1"):
                t.copy_(0.2 + torch.rand(t.shape, generator=g))
            elif "norm" in name and name.endswith("weight"):
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
            elif name.endswith("mask_token"):
                t.zero_()
            else:
                s = 0.5 if "token" in name else 0.05 if "patch" in name else 0.1 if name.endswith("bias") else 0.15
                t.copy_(s * torch.randn(t.shape, generator=g))
    return m.eval().to(torch.float32), cfg


def official_state(hf, swiglu, seed):
    """The HF weights under the official names; a random key bias masked off."""
    h = hf.state_dict()
    g = torch.Generator().manual_seed(seed + 1000)
    sd = {"cls_token": h["embeddings.cls_token"], "storage_tokens": h["embeddings.register_tokens"],
          "mask_token": h["embeddings.mask_token"].reshape(1, D),
          "patch_embed.proj.weight": h["embeddings.patch_embeddings.weight"],
          "patch_embed.proj.bias": h["embeddings.patch_embeddings.bias"],
          "rope_embed.periods": 100.0 ** (2 * torch.arange(D // HEADS // 4, dtype=torch.float32) / (D // HEADS // 2))}
    for i in range(DEPTH):
        s, p = f"blocks.{i}.", f"model.layer.{i}."
        sd[s + "norm1.weight"], sd[s + "norm1.bias"] = h[p + "norm1.weight"], h[p + "norm1.bias"]
        sd[s + "attn.qkv.weight"] = torch.cat([h[p + f"attention.{n}_proj.weight"] for n in "qkv"])
        kb = 0.5 * torch.randn(D, generator=g)  # what bias_mask removes
        sd[s + "attn.qkv.bias"] = torch.cat([h[p + "attention.q_proj.bias"], kb, h[p + "attention.v_proj.bias"]])
        sd[s + "attn.qkv.bias_mask"] = torch.cat([torch.ones(D), torch.zeros(D), torch.ones(D)])
        sd[s + "attn.proj.weight"], sd[s + "attn.proj.bias"] = h[p + "attention.o_proj.weight"], h[p + "attention.o_proj.bias"]
        sd[s + "ls1.gamma"] = h[p + "layer_scale1.lambda1"]
        sd[s + "norm2.weight"], sd[s + "norm2.bias"] = h[p + "norm2.weight"], h[p + "norm2.bias"]
        pairs = (("w1", "gate_proj"), ("w2", "up_proj"), ("w3", "down_proj")) if swiglu else \
            (("fc1", "up_proj"), ("fc2", "down_proj"))
        for a, b in pairs:
            sd[s + f"mlp.{a}.weight"], sd[s + f"mlp.{a}.bias"] = h[p + f"mlp.{b}.weight"], h[p + f"mlp.{b}.bias"]
        sd[s + "ls2.gamma"] = h[p + "layer_scale2.lambda1"]
    sd["norm.weight"], sd["norm.bias"] = h["norm.weight"], h["norm.bias"]
    if swiglu:  # ViT-7B's training-only norm of the local crops' CLS
        sd["local_cls_norm.weight"] = 1 + 0.1 * torch.randn(D, generator=g)
        sd["local_cls_norm.bias"] = 0.1 * torch.randn(D, generator=g)
    return {k: v.clone().contiguous() for k, v in sd.items()}


def official_model(DinoVisionTransformer, sd, swiglu):
    m = DinoVisionTransformer(img_size=224, patch_size=P, embed_dim=D, depth=DEPTH, num_heads=HEADS,
                              ffn_ratio=HID * 3 / 2 / D if swiglu else HID / D, qkv_bias=True,
                              layerscale_init=1e-5, norm_layer="layernormbf16",
                              ffn_layer="swiglu" if swiglu else "mlp", n_storage_tokens=NREG, mask_k_bias=True,
                              pos_embed_rope_base=100.0, pos_embed_rope_normalize_coords="separate",
                              pos_embed_rope_rescale_coords=2, pos_embed_rope_dtype="fp32",
                              untie_global_and_local_cls_norm=swiglu)
    m.load_state_dict(sd, strict=True)
    return m.eval()


def official_outputs(m, x):
    """Final-norm tokens [CLS, storage, patches], last-block attention, block 0's output normed."""
    seen = {}

    def hook(mod, args, kwargs):
        seen["x"], seen["rope"] = args[0], kwargs.get("rope")

    hd = m.blocks[-1].attn.register_forward_pre_hook(hook, with_kwargs=True)
    out = m.forward_features(x)
    hd.remove()
    tokens = torch.cat((out["x_norm_clstoken"][:, None], out["x_storage_tokens"], out["x_norm_patchtokens"]), 1)
    attn = m.blocks[-1].attn
    B, N, _ = seen["x"].shape
    qkv = attn.qkv(seen["x"]).reshape(B, N, 3, HEADS, D // HEADS)
    q, k, _ = [t.transpose(1, 2) for t in torch.unbind(qkv, 2)]
    q, k = attn.apply_rope(q, k, seen["rope"])
    att = (q @ k.transpose(-2, -1) * attn.scale).softmax(-1)
    inter = m.get_intermediate_layers(x, n=2, return_class_token=True, return_extra_tokens=True, norm=True)[0]
    inter0 = torch.cat((inter[1][:, None], inter[2], inter[0]), 1)
    return tokens, att, inter0


def ours(t):
    """[CLS, storage, patches] -> (CLS + patches, storage)."""
    return torch.cat((t[:, :1], t[:, 1 + NREG:]), 1), t[:, 1:1 + NREG]


def ours_attn(a):
    keep = [0] + list(range(1 + NREG, a.shape[-1]))
    return a[:, :, keep][:, :, :, keep]


def close(a, b, what, tol=2e-5):
    err = (a - b).abs().max().item()
    assert err <= tol, f"{what}: max error {err}"
    return err


def main():
    torch.set_grad_enabled(False)
    Official = official_module()
    from safetensors.torch import load_file, save_file
    expect = {}
    for name, swiglu, seed in (("mlp", False, 31), ("swiglu", True, 32)):
        hf, cfg = hf_model(seed, swiglu)
        sd = official_state(hf, swiglu, seed)
        torch.save(sd, os.path.join(OUT, f"dinov3_{name}.pth"))
        off = official_model(Official, sd, swiglu)
        with tempfile.TemporaryDirectory() as td:
            hf.save_pretrained(td)
            st = load_file(os.path.join(td, "model.safetensors"))
            # save_pretrained writes the hub's names; the mlp file gets the module's instead
            names = {("model." + k if k.startswith("layer.") and not swiglu else k): v.contiguous()
                     for k, v in st.items()}
            path = os.path.join(OUT, f"dinov3_{name}_hf.safetensors")
            save_file(names, path, metadata={"format": "pt"})
            print(f"{name}: safetensors names", sorted(names)[:3], "...")
        hf.config._attn_implementation = "eager"
        for k, (h, w) in enumerate(SIZES):
            x = torch.from_numpy(fill((2, 3, h, w), IMG_SEED + k, -1.0, 1.0))
            otok, oatt, ointer = official_outputs(off, x)
            r = hf(pixel_values=x, output_attentions=True, output_hidden_states=True)
            htok, hatt = r.last_hidden_state, r.attentions[-1]
            hinter = hf.norm(r.hidden_states[1])
            e = close(htok, otok, f"{name} {h}x{w}: transformers vs official tokens")
            close(hatt, oatt, f"{name} {h}x{w}: transformers vs official attention")
            close(hinter, ointer, f"{name} {h}x{w}: transformers vs official block 0")
            print(f"{name} {h}x{w}: transformers agrees with the official code (max {e:.2e})")
            for src, tok, att, inter in (("pth", otok, oatt, ointer), ("hf", htok, hatt, hinter)):
                tag = f"{name}/{src}/{h}x{w}"
                expect[tag + "/tokens"], expect[tag + "/regs"] = ours(tok)
                expect[tag + "/attn"] = ours_attn(att)
                expect[tag + "/inter0"] = ours(inter)[0]
    write(os.path.join(OUT, "dinov3.dfx"), expect)
    import transformers
    print("wrote dinov3_*.pth, dinov3_*_hf.safetensors, dinov3.dfx with torch", torch.__version__,
          "transformers", transformers.__version__)


if __name__ == "__main__":
    main()
