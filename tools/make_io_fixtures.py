"""Fixtures for tests/test_pth.c, test_safetensors.c and test_model_io.c.

Writes tiny random-weight ViTs in every format dino.c reads, as PyTorch,
safetensors and transformers write them, plus hostile files crafted byte by
byte (never executed), and tests/fixtures/io_expect.dfx with, for every
variant and every tensor under its DINO name, a signature that catches a wrong
mapping or order: [sum, sum|x|, sum x_i*((i%97)+1), x[0], x[n/3], x[2n/3], x[n-1]]
(float64 sums stored as float32), and PyTorch's forward outputs for inputs that
C regenerates with fixture_fill.

Models (sizes chosen so the files stay small; heads = D/64 as in DINO):
  A: D=64, 1 head, depth 2, MLP 64, patch 4, 3 channels, img 8 (grid 2)
  B: D=128, 2 heads, depth 1, MLP 64, patch 2, 3 channels, img 4 (grid 2), bf16
Head: in 64, hidden 48, bottleneck 16, out 32, 3 layers, norm_last_layer;
io_vit_bnhead.pth has the same head with --use_bn_in_head (BatchNorm1d at
mlp.1 and mlp.4, the Linears at mlp.0, 3, 6, num_batches_tracked kept).
"""
import argparse
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import fixture_io  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
torch.manual_seed(0)


def vit_state(D, depth, mlp, patch, chans, grid, gen, scale=0.05):
    sd = {}
    r = lambda *s: (torch.randn(*s, generator=gen) * scale).float()  # noqa: E731
    sd["cls_token"] = r(1, 1, D)
    sd["pos_embed"] = r(1, 1 + grid * grid, D)
    sd["patch_embed.proj.weight"] = r(D, chans, patch, patch)
    sd["patch_embed.proj.bias"] = r(D)
    for i in range(depth):
        p = f"blocks.{i}."
        sd[p + "norm1.weight"] = 1 + r(D)
        sd[p + "norm1.bias"] = r(D)
        sd[p + "attn.qkv.weight"] = r(3 * D, D)
        sd[p + "attn.qkv.bias"] = r(3 * D)
        sd[p + "attn.proj.weight"] = r(D, D)
        sd[p + "attn.proj.bias"] = r(D)
        sd[p + "norm2.weight"] = 1 + r(D)
        sd[p + "norm2.bias"] = r(D)
        sd[p + "mlp.fc1.weight"] = r(mlp, D)
        sd[p + "mlp.fc1.bias"] = r(mlp)
        sd[p + "mlp.fc2.weight"] = r(D, mlp)
        sd[p + "mlp.fc2.bias"] = r(D)
    sd["norm.weight"] = 1 + r(D)
    sd["norm.bias"] = r(D)
    return sd


def head_state(in_dim, hidden, bottleneck, out, gen):
    r = lambda *s: (torch.randn(*s, generator=gen) * 0.1).float()  # noqa: E731
    return {
        "mlp.0.weight": r(hidden, in_dim), "mlp.0.bias": r(hidden),
        "mlp.2.weight": r(hidden, hidden), "mlp.2.bias": r(hidden),
        "mlp.4.weight": r(bottleneck, hidden), "mlp.4.bias": r(bottleneck),
        "last_layer.weight_g": torch.ones(out, 1),
        "last_layer.weight_v": r(out, bottleneck),
    }


def bn_head_state(in_dim, hidden, bottleneck, out, gen):
    """DINOHead(use_bn=True)'s state_dict keys, in its order, random values
    (positive running variances; num_batches_tracked an int64 count)."""
    r = lambda *s: (torch.randn(*s, generator=gen) * 0.1).float()  # noqa: E731
    sd = {}
    for i, (o, n) in enumerate([(hidden, in_dim), (hidden, hidden)]):
        sd[f"mlp.{3 * i}.weight"], sd[f"mlp.{3 * i}.bias"] = r(o, n), r(o)
        sd[f"mlp.{3 * i + 1}.weight"], sd[f"mlp.{3 * i + 1}.bias"] = 1 + r(o), r(o)
        sd[f"mlp.{3 * i + 1}.running_mean"], sd[f"mlp.{3 * i + 1}.running_var"] = r(o), 1 + r(o).abs()
        sd[f"mlp.{3 * i + 1}.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    sd["mlp.6.weight"], sd["mlp.6.bias"] = r(bottleneck, hidden), r(bottleneck)
    sd["last_layer.weight_g"] = torch.ones(out, 1)
    sd["last_layer.weight_v"] = r(out, bottleneck)
    return sd


def timm_model(sd, D, depth, heads, mlp, patch, chans, img):
    import timm.models.vision_transformer as tv
    m = tv.VisionTransformer(img_size=img, patch_size=patch, in_chans=chans, embed_dim=D, depth=depth,
                             num_heads=heads, mlp_ratio=mlp / D, qkv_bias=True, num_classes=0,
                             global_pool="token", class_token=True)
    m.load_state_dict(sd, strict=True)
    return m.eval()


def hf_state(sd, depth, D):
    """Our (timm/DINO) names -> Hugging Face ViTModel names (docs/FORMATS.md §4)."""
    h = {
        "embeddings.cls_token": sd["cls_token"],
        "embeddings.position_embeddings": sd["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"],
    }
    for i in range(depth):
        s, p = f"blocks.{i}.", f"encoder.layer.{i}."
        q, k, v = sd[s + "attn.qkv.weight"].split(D)
        qb, kb, vb = sd[s + "attn.qkv.bias"].split(D)
        for nm, w, b in (("query", q, qb), ("key", k, kb), ("value", v, vb)):
            h[p + f"attention.attention.{nm}.weight"] = w.clone()
            h[p + f"attention.attention.{nm}.bias"] = b.clone()
        h[p + "attention.output.dense.weight"] = sd[s + "attn.proj.weight"]
        h[p + "attention.output.dense.bias"] = sd[s + "attn.proj.bias"]
        h[p + "intermediate.dense.weight"] = sd[s + "mlp.fc1.weight"]
        h[p + "intermediate.dense.bias"] = sd[s + "mlp.fc1.bias"]
        h[p + "output.dense.weight"] = sd[s + "mlp.fc2.weight"]
        h[p + "output.dense.bias"] = sd[s + "mlp.fc2.bias"]
        h[p + "layernorm_before.weight"] = sd[s + "norm1.weight"]
        h[p + "layernorm_before.bias"] = sd[s + "norm1.bias"]
        h[p + "layernorm_after.weight"] = sd[s + "norm2.weight"]
        h[p + "layernorm_after.bias"] = sd[s + "norm2.bias"]
    return h


def dino_head_forward(hs, x):
    g = torch.nn.functional.gelu
    x = g(x @ hs["mlp.0.weight"].T + hs["mlp.0.bias"])
    x = g(x @ hs["mlp.2.weight"].T + hs["mlp.2.bias"])
    x = x @ hs["mlp.4.weight"].T + hs["mlp.4.bias"]
    x = torch.nn.functional.normalize(x, dim=-1, p=2)
    v = hs["last_layer.weight_v"]
    w = hs["last_layer.weight_g"] * v / v.norm(dim=1, keepdim=True)
    return x @ w.T


def signature(t):
    a = t.detach().float().double().reshape(-1).numpy()
    n = a.size
    w = (np.arange(n) % 97 + 1).astype(np.float64)
    return np.array([a.sum(), np.abs(a).sum(), (a * w).sum(), a[0], a[n // 3], a[(2 * n) // 3], a[n - 1]])


def add_sigs(expect, variant, sd_dino):
    for k, v in sd_dino.items():
        expect[f"{variant}/{k}"] = signature(v)


# ---------------------------------------------------------------- hostile files

def zip_pth(path, pickle_bytes, storages, root="archive"):
    """A torch.save-like zip: STORED entries under one root folder."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{root}/data.pkl", pickle_bytes)
        z.writestr(f"{root}/byteorder", "little")
        for key, data in storages.items():
            z.writestr(f"{root}/data/{key}", data)
        z.writestr(f"{root}/version", "3\n")


def op_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def evil_reduce(module, name, arg):
    """PROTO 2, GLOBAL module.name, (arg,) REDUCE, STOP: calling it would run it."""
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + op_str(arg) + b"\x85R."


def evil_stack_global(module, name, arg):
    return (b"\x80\x04" + b"\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) +
            name.encode() + b"\x93" + op_str(arg) + b"\x85R.")


def tensor_pickle(size, stride, offset, numel, key="0"):
    """{'w': _rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())}."""
    def tup(xs):
        return b"(" + b"".join(b"J" + struct.pack("<i", x) for x in xs) + b"t"
    return (b"\x80\x02}" + op_str("w") + b"ctorch._utils\n_rebuild_tensor_v2\n(" +
            b"(" + op_str("storage") + b"ctorch\nFloatStorage\n" + op_str(key) + op_str("cpu") +
            b"J" + struct.pack("<i", numel) + b"tQ" +
            b"J" + struct.pack("<i", offset) + tup(size) + tup(stride) + b"\x89" +
            b"ccollections\nOrderedDict\n)R" + b"tRs.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT)
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    P = lambda n: os.path.join(out, n)  # noqa: E731
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(1234)
    A = dict(D=64, depth=2, mlp=64, patch=4, chans=3, grid=2)
    sdA = vit_state(gen=gen, **A)
    expect = {}

    # 1. backbone-only .pth with plain keys (as dino_deitsmall16_pretrain.pth), OrderedDict.
    mA = timm_model(sdA, 64, 2, 1, 64, 4, 3, 8)
    torch.save(mA.state_dict(), P("io_vit_bb.pth"))
    add_sigs(expect, "bb", {"backbone." + k: v for k, v in sdA.items()})

    # Forward reference for model A: final-norm tokens for a fill input.
    xA = torch.from_numpy(fixture_io.fill((2, 3, 8, 8), 4242, -1.0, 1.0))
    with torch.no_grad():
        expect["fwd/bb/input_seed4242"] = mA.forward_features(xA)

    # 2. full DINO training checkpoint.
    hS = head_state(64, 48, 16, 32, gen)
    sdS = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in sdA.items()}
    sdT = {k: v.clone() for k, v in sdA.items()}  # teacher = model A
    hT = {k: (v.clone() if "weight_g" in k else v + 0.01 * torch.randn(v.shape, generator=gen))
          for k, v in hS.items()}
    student = {"module.backbone." + k: v for k, v in sdS.items()}
    student.update({"module.head." + k: v for k, v in hS.items()})
    teacher = {"backbone." + k: v for k, v in sdT.items()}
    teacher.update({"head." + k: v for k, v in hT.items()})
    # A real AdamW state over a few parameters (two groups, as DINO), one step taken.
    params = [torch.nn.Parameter(sdS["cls_token"].clone()), torch.nn.Parameter(sdS["norm.bias"].clone())]
    opt = torch.optim.AdamW([{"params": [params[0]]}, {"params": [params[1]], "weight_decay": 0.0}])
    sum((p * p).sum() for p in params).backward()
    opt.step()
    osd = opt.state_dict()
    for g in osd["param_groups"]:
        g["lr"] = np.float64(0.000123)
    osd["param_groups"][0]["weight_decay"] = np.float64(0.04)
    args = argparse.Namespace(arch="vit_tiny", patch_size=4, out_dim=32, norm_last_layer=True,
                              use_bn_in_head=False, momentum_teacher=0.996, lr=0.0005,
                              global_crops_scale=(0.4, 1.0), local_crops_number=8, seed=0,
                              data_path="/path/to/imagenet/train/", dist_url="env://", gpu=None)
    ckpt = {"student": student, "teacher": teacher, "optimizer": osd, "epoch": 3, "args": args,
            "dino_loss": {"center": torch.randn(1, 32, generator=gen)},
            "fp16_scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                            "growth_interval": 2000, "_growth_tracker": 17}}
    torch.save(ckpt, P("io_vit_train.pth"))
    add_sigs(expect, "train_teacher", teacher)
    add_sigs(expect, "train_student", {k[len("module."):]: v for k, v in student.items()})
    with torch.no_grad():
        mT = timm_model(sdT, 64, 2, 1, 64, 4, 3, 8)
        cls = mT.forward_features(xA)[:, 0]
        expect["fwd/teacher_head/input_seed4242"] = dino_head_forward(hT, cls)

    # 3. timm-style safetensors (same weights as model A).
    save_file({k: v.contiguous() for k, v in sdA.items()}, P("io_vit_timm.safetensors"),
              metadata={"format": "pt"})

    # 4. Hugging Face ViTModel safetensors (same weights, HF names, eps 1e-12).
    try:
        from transformers import ViTConfig, ViTModel
        cfg = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=1, intermediate_size=64,
                        image_size=8, patch_size=4, num_channels=3, qkv_bias=True, layer_norm_eps=1e-12,
                        hidden_act="gelu")
        hf = ViTModel(cfg, add_pooling_layer=False).eval()
        # transformers 5 names modules differently in memory (layers.N.attention.q_proj ...)
        # but save_pretrained writes the hub's names (encoder.layer.N.attention.attention.query ...).
        legacy = hf_state(sdA, 2, 64)
        mem = {}
        for k, v in legacy.items():
            k2 = k
            for a, b in (("encoder.layer.", "layers."), ("attention.attention.query", "attention.q_proj"),
                         ("attention.attention.key", "attention.k_proj"),
                         ("attention.attention.value", "attention.v_proj"),
                         ("attention.output.dense", "attention.o_proj"), ("intermediate.dense", "mlp.fc1"),
                         ("output.dense", "mlp.fc2")):
                k2 = k2.replace(a, b)
            mem[k2] = v
        sd_mem = hf.state_dict()
        if set(mem) != set(sd_mem):
            mem = legacy  # older transformers: the legacy names are the module names
        hf.load_state_dict(mem, strict=True)
        import tempfile
        import shutil
        with tempfile.TemporaryDirectory() as td:
            hf.save_pretrained(td)
            shutil.copy(os.path.join(td, "model.safetensors"), P("io_vit_hf.safetensors"))
        with torch.no_grad():
            expect["fwd/hf/input_seed4242"] = hf(pixel_values=xA).last_hidden_state
        print("HF file written with transformers", __import__("transformers").__version__)
    except ImportError:
        save_file({k: v.contiguous() for k, v in hf_state(sdA, 2, 64).items()}, P("io_vit_hf.safetensors"),
                  metadata={"format": "pt"})
        print("transformers missing: HF names written by hand")

    # 5. fp16 .pth (model A rounded).
    sd16 = {k: v.half() for k, v in sdA.items()}
    torch.save(sd16, P("io_vit_bb_f16.pth"))
    add_sigs(expect, "f16", {"backbone." + k: v for k, v in sd16.items()})

    # 6. bf16 safetensors of model B (D=128, 2 heads).
    B = dict(D=128, depth=1, mlp=64, patch=2, chans=3, grid=2)
    sdB = {k: v.bfloat16() for k, v in vit_state(gen=gen, **B).items()}
    save_file(sdB, P("io_vit2h_bf16.safetensors"))
    add_sigs(expect, "bf16_2h", {"backbone." + k: v for k, v in sdB.items()})
    with torch.no_grad():
        mB = timm_model({k: v.float() for k, v in sdB.items()}, 128, 1, 2, 64, 2, 3, 4)
        xB = torch.from_numpy(fixture_io.fill((2, 3, 4, 4), 4243, -1.0, 1.0))
        expect["fwd/bf16_2h/input_seed4243"] = mB.forward_features(xB)

    # 7. Pickle coverage: protocol 2 and 4, shared storage, strided/offset views, numpy scalars.
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8
    misc = {"a": base, "t": base.t(), "row": base[1], "col": base[:, 2], "h": base.half(),
            "b": base.bfloat16(), "d": base.double(), "i": torch.arange(5), "s": torch.tensor(2.5),
            "np": np.float64(0.25), "ns": argparse.Namespace(x=1, y="z", z=[1.5, None, True]),
            "big": 2 ** 70, "neg": -5, "bytes": b"\x00\xff\x80abc"}
    torch.save(misc, P("io_misc_p2.pth"))
    torch.save(misc, P("io_misc_p4.pth"), pickle_protocol=4)

    # 8. Hostile and unsupported files (bytes only; none of this is ever unpickled here).
    zip_pth(P("io_evil_os_system.pth"), evil_reduce("os", "system", "touch /tmp/dino_pwned"), {})
    zip_pth(P("io_evil_posix_system.pth"), evil_reduce("posix", "system", "touch /tmp/dino_pwned"), {})
    zip_pth(P("io_evil_eval.pth"), evil_reduce("builtins", "eval", "__import__('os')"), {})
    zip_pth(P("io_evil_subprocess.pth"), evil_stack_global("subprocess", "Popen", "id"), {})
    zip_pth(P("io_evil_oob.pth"), tensor_pickle([3, 4], [4, 1], 2, 12), {"0": b"\0" * 48})
    zip_pth(P("io_evil_stride.pth"), tensor_pickle([3, 4], [5, 1], 0, 12), {"0": b"\0" * 48})
    zip_pth(P("io_evil_short_storage.pth"), tensor_pickle([3, 4], [4, 1], 0, 12), {"0": b"\0" * 40})
    zip_pth(P("io_ok_tensor.pth"), tensor_pickle([3, 4], [4, 1], 0, 12),
            {"0": np.arange(12, dtype="<f4").tobytes()})
    with zipfile.ZipFile(P("io_evil_deflate.pth"), "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", tensor_pickle([3, 4], [4, 1], 0, 12))
        z.writestr("archive/data/0", b"\0" * 48)
    torch.save({"w": torch.ones(2)}, P("io_legacy.pth"), _use_new_zipfile_serialization=False)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self, x):
            return x * self.w
    torch.jit.save(torch.jit.script(Tiny()), P("io_torchscript.pt"))

    # 2b. a training checkpoint's teacher with --use_bn_in_head (its own
    # generator, so the files above stay as they were).
    genB = torch.Generator().manual_seed(4321)
    tB = {"backbone." + k: v for k, v in sdA.items()}
    tB.update({"head." + k: v for k, v in bn_head_state(64, 48, 16, 32, genB).items()})
    argsB = argparse.Namespace(arch="vit_tiny", patch_size=4, out_dim=32, norm_last_layer=True,
                               use_bn_in_head=True)
    torch.save({"teacher": tB, "epoch": 1, "args": argsB}, P("io_vit_bnhead.pth"))
    add_sigs(expect, "bnhead_teacher", {k: v for k, v in tB.items() if not k.endswith("num_batches_tracked")})

    fixture_io.write(P("io_expect.dfx"), expect)
    total = sum(os.path.getsize(P(f)) for f in os.listdir(out) if f.startswith("io_"))
    print(f"wrote io_* fixtures, {total} bytes")


if __name__ == "__main__":
    main()
