"""Reference fixtures for the evaluation tests (tests/test_knn.c, test_npy.c,
test_linear.c, test_attnmap.c, test_features.c, test_eval_cli.c), computed
with NumPy and PyTorch on CPU: the reference's k-NN classifier, a linear-probe
SGD run, a tiny reference ViT's attention/features, visualize_attention's
masks, and an end-to-end case (a DINO-checkpoint-shaped .pth and PIL resize).

  PY=$(tools/venv.sh); $PY tools/make_eval_fixtures.py            # writes tests/fixtures/eval_*
  $PY tools/make_eval_fixtures.py --check-npy DIR                  # numpy reads the .npy files C wrote

Inputs are generated with fixture_io.fill so the C tests regenerate them
instead of reading them from disk; only labels, results and the .pth (the
file format under test) are stored. --only NAME... regenerates some.
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


# ----------------------------------------------------------------------------- k-NN

def knn_reference(train_features, train_labels, test_features, test_labels, k, T, num_classes):
    """The logic of the reference eval_knn.knn_classifier, restated: 100 chunks of
    test rows, cosine similarity by matrix product, top-k, one-hot votes weighted
    by exp(sim / T), classes sorted by score, top-1 and top-min(5, k)."""
    import torch
    top1 = top5 = 0.0
    total = 0
    train_t = train_features.t()
    n_test = test_labels.shape[0]
    step = n_test // 100
    one_hot = torch.zeros(k, num_classes)
    for start in range(0, n_test, step):
        feats = test_features[start:min(start + step, n_test)]
        targets = test_labels[start:min(start + step, n_test)]
        b = targets.shape[0]
        sim = torch.mm(feats, train_t)
        dist, idx = sim.topk(k, largest=True, sorted=True)
        neigh = torch.gather(train_labels.view(1, -1).expand(b, -1), 1, idx)
        one_hot.resize_(b * k, num_classes).zero_()
        one_hot.scatter_(1, neigh.view(-1, 1), 1)
        w = dist.clone().div_(T).exp_()
        probs = torch.sum(one_hot.view(b, -1, num_classes) * w.view(b, -1, 1), 1)
        _, pred = probs.sort(1, True)
        correct = pred.eq(targets.view(-1, 1))
        top1 += correct.narrow(1, 0, 1).sum().item()
        top5 += correct.narrow(1, 0, min(5, k)).sum().item()
        total += b
    return top1 * 100.0 / total, top5 * 100.0 / total


def make_knn():
    import torch
    ntr, nte, d, nc, s_tr, s_te = 2000, 500, 32, 10, 101, 102
    rng = np.random.default_rng(7)
    trl = rng.integers(0, nc, ntr)
    tel = rng.integers(0, nc, nte)
    tr = fill((ntr, d), s_tr, -1, 1)
    te = fill((nte, d), s_te, -1, 1)
    tr[np.arange(ntr), trl] += np.float32(1.0)
    te[np.arange(nte), tel] += np.float32(1.0)
    trt = torch.nn.functional.normalize(torch.from_numpy(tr), dim=1, p=2)
    tet = torch.nn.functional.normalize(torch.from_numpy(te), dim=1, p=2)
    ks = [1, 5, 10, 20, 100, 200]
    res = []
    for k in ks:
        t1, t5 = knn_reference(trt, torch.from_numpy(trl), tet, torch.from_numpy(tel), k, 0.07, nc)
        res += [t1, t5]
        print(f"knn k={k}: top1 {t1:.2f} top5 {t5:.2f}")
    write(os.path.join(OUT, "eval_knn.bin"), {
        "meta": np.array([ntr, nte, d, nc, s_tr, s_te], np.float32),
        "train_labels": trl.astype(np.float32),
        "test_labels": tel.astype(np.float32),
        "ks": np.array(ks, np.float32),
        "top1_top5": np.array(res, np.float32),
    })


# ----------------------------------------------------------------------------- .npy

def make_npy():
    """Files as np.save writes them; C reads them and must write byte-equal ones."""
    np.save(os.path.join(OUT, "eval_npy_f4_3x4.npy"), fill((3, 4), 1, -2, 2))
    np.save(os.path.join(OUT, "eval_npy_i8_5.npy"), np.array([3, -1, 0, 7, 2**40], np.int64))
    np.save(os.path.join(OUT, "eval_npy_f8_fortran.npy"),
            np.asfortranarray(fill((5, 3), 2, -1, 1).astype(np.float64)))
    np.save(os.path.join(OUT, "eval_npy_be_f4.npy"), fill((2, 3, 2), 3, 0, 5).astype(">f4"))
    np.save(os.path.join(OUT, "eval_npy_i4_labels.npy"), (np.arange(10) % 3).astype(np.int32))
    np.save(os.path.join(OUT, "eval_npy_u1.npy"), np.arange(6, dtype=np.uint8).reshape(2, 3))
    np.save(os.path.join(OUT, "eval_npy_f4_scalar.npy"), np.float32(2.5))


def check_npy(directory):
    """numpy must load every .npy file that the C tests wrote into `directory`."""
    names = sorted(f for f in os.listdir(directory) if f.endswith(".npy"))
    if not names:
        sys.exit(f"no .npy files in {directory}")
    for f in names:
        a = np.load(os.path.join(directory, f))
        print(f"numpy reads {f}: dtype {a.dtype} shape {a.shape}")


# ----------------------------------------------------------------------------- linear probe

def make_linear():
    """A tiny run of the reference's linear-probe training loop: Linear(dim, C),
    SGD(momentum 0.9, weight decay 0) at lr * batch / 256, CosineAnnealingLR
    (T_max = epochs, eta_min = 0) stepped per epoch, CrossEntropyLoss, dataset
    order (no shuffle), a smaller last batch. Initial weight from fill (the C
    test sets the same), bias 0."""
    import torch
    n, nv, d, c, batch, epochs, lr = 100, 40, 16, 5, 32, 3, 2.0
    rng = np.random.default_rng(11)
    y = rng.integers(0, c, n)
    yv = rng.integers(0, c, nv)
    x = fill((n, d), 201, -1, 1)
    xv = fill((nv, d), 203, -1, 1)
    lin = torch.nn.Linear(d, c)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(fill((c, d), 202, -0.05, 0.05)))
        lin.bias.zero_()
    opt = torch.optim.SGD(lin.parameters(), lr * batch / 256.0, momentum=0.9, weight_decay=0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=0)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    out = {"meta": np.array([n, nv, d, c, batch, epochs, lr], np.float32),
           "y": y.astype(np.float32), "yv": yv.astype(np.float32)}
    for e in range(epochs):
        losses = []
        out[f"lr{e}"] = np.array([opt.param_groups[0]["lr"]], np.float32)
        for s in range(0, n, batch):
            loss = loss_fn(lin(xt[s:s + batch]), yt[s:s + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sched.step()
        out[f"w{e}"] = lin.weight.detach().clone()
        out[f"b{e}"] = lin.bias.detach().clone()
        out[f"loss{e}"] = np.array([np.mean(losses)], np.float32)
        with torch.no_grad():
            pred = lin(torch.from_numpy(xv)).argmax(1).numpy()
        out[f"top1_{e}"] = np.array([100.0 * np.mean(pred == yv)], np.float32)
        print(f"linear epoch {e}: loss {np.mean(losses):.5f} val top1 {out[f'top1_{e}'][0]:.2f}")
    write(os.path.join(OUT, "eval_linear.bin"), out)


# ----------------------------------------------------------------------------- attention maps

PARAM_SEED = 1000  # the engine fixtures' weight scheme (tools/make_engine_fixtures.py)


def param_range(name, shape):
    """Fill range of a parameter, the same rule as the engine fixtures."""
    if name.endswith(".bias"):
        return -0.1, 0.1
    if len(shape) == 1:  # LayerNorm weight
        return 0.5, 1.5
    if name.endswith("cls_token") or name.endswith("pos_embed"):
        return -0.5, 0.5
    fan_in = int(np.prod(shape)) // shape[0]
    a = float(np.float32(1.0 / math.sqrt(fan_in)))
    return -a, a


def tiny_vit(img_size, patch, dim, depth, heads, hidden, seed_base=PARAM_SEED, params_out=None):
    """The reference ViT, restated: returns a function image -> (tokens after
    the final norm for every block output, last block's attention)."""
    import torch
    import torch.nn.functional as F
    P = {}
    grid = img_size // patch
    shapes = [("cls_token", (1, 1, dim)), ("pos_embed", (1, grid * grid + 1, dim)),
              ("patch_embed.proj.weight", (dim, 3, patch, patch)), ("patch_embed.proj.bias", (dim,))]
    for b in range(depth):
        pre = f"blocks.{b}."
        shapes += [(pre + "norm1.weight", (dim,)), (pre + "norm1.bias", (dim,)),
                   (pre + "attn.qkv.weight", (3 * dim, dim)), (pre + "attn.qkv.bias", (3 * dim,)),
                   (pre + "attn.proj.weight", (dim, dim)), (pre + "attn.proj.bias", (dim,)),
                   (pre + "norm2.weight", (dim,)), (pre + "norm2.bias", (dim,)),
                   (pre + "mlp.fc1.weight", (hidden, dim)), (pre + "mlp.fc1.bias", (hidden,)),
                   (pre + "mlp.fc2.weight", (dim, hidden)), (pre + "mlp.fc2.bias", (dim,))]
    shapes += [("norm.weight", (dim,)), ("norm.bias", (dim,))]
    for i, (name, shape) in enumerate(shapes):
        lo, hi = param_range(name, shape)
        P[name] = torch.from_numpy(fill(shape, seed_base + i, lo, hi))
    if params_out is not None:
        params_out.update(P)

    def pos_for(h_img, w_img, npatch):
        n = P["pos_embed"].shape[1] - 1
        if npatch == n and h_img == w_img:
            return P["pos_embed"]
        side = int(math.sqrt(n))
        g0 = h_img // patch + 0.1  # the reference calls this w0 (image dim 2)
        g1 = w_img // patch + 0.1
        grid_pe = P["pos_embed"][:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        grid_pe = F.interpolate(grid_pe, scale_factor=(g0 / math.sqrt(n), g1 / math.sqrt(n)),
                                mode="bicubic")
        assert grid_pe.shape[-2] == int(g0) and grid_pe.shape[-1] == int(g1)
        grid_pe = grid_pe.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((P["pos_embed"][:, :1], grid_pe), dim=1)

    def run(img):
        B, _, H, W = img.shape
        x = F.conv2d(img, P["patch_embed.proj.weight"], P["patch_embed.proj.bias"], stride=patch)
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat((P["cls_token"].expand(B, -1, -1), x), dim=1)
        x = x + pos_for(H, W, x.shape[1] - 1)
        outs, attn = [], None
        nh, hd = heads, dim // heads
        for b in range(depth):
            pre = f"blocks.{b}."
            y = F.layer_norm(x, (dim,), P[pre + "norm1.weight"], P[pre + "norm1.bias"], 1e-6)
            qkv = F.linear(y, P[pre + "attn.qkv.weight"], P[pre + "attn.qkv.bias"])
            qkv = qkv.reshape(B, -1, 3, nh, hd).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = ((q @ k.transpose(-2, -1)) * hd ** -0.5).softmax(dim=-1)
            y = (attn @ v).transpose(1, 2).reshape(B, -1, dim)
            x = x + F.linear(y, P[pre + "attn.proj.weight"], P[pre + "attn.proj.bias"])
            y = F.layer_norm(x, (dim,), P[pre + "norm2.weight"], P[pre + "norm2.bias"], 1e-6)
            y = F.linear(F.gelu(F.linear(y, P[pre + "mlp.fc1.weight"], P[pre + "mlp.fc1.bias"])),
                         P[pre + "mlp.fc2.weight"], P[pre + "mlp.fc2.bias"])
            x = x + y
            outs.append(F.layer_norm(x, (dim,), P["norm.weight"], P["norm.bias"], 1e-6))
        return outs, attn

    return run


def threshold_masks(maps, threshold):
    """visualize_attention.py's mask, restated: per head sort ascending,
    normalise to sum 1, cumulative sum > 1 - threshold, back to the patch order."""
    import torch
    val, idx = torch.sort(maps, stable=True)
    val = val / torch.sum(val, dim=1, keepdim=True)
    keep = torch.cumsum(val, dim=1) > (1 - threshold)
    back = torch.argsort(idx)
    out = torch.zeros_like(keep)
    for h in range(maps.shape[0]):
        out[h] = keep[h][back[h]]
    return out.float()


def make_attention():
    import torch
    cfg = dict(img_size=32, patch=8, dim=48, depth=2, heads=3, hidden=192)
    run = tiny_vit(**cfg)
    H_raw, W_raw, img_seed = 43, 61, 5100
    img = torch.from_numpy(fill((1, 3, H_raw, W_raw), img_seed, -2, 2))
    p = cfg["patch"]
    H, W = H_raw - H_raw % p, W_raw - W_raw % p  # the reference's top-left crop
    img = img[:, :, :H, :W]
    with torch.no_grad():
        outs, attn = run(img)
    nh = cfg["heads"]
    maps = attn[0, :, 0, 1:].reshape(nh, -1)
    out = {"config": np.array([cfg["img_size"], p, cfg["dim"], cfg["depth"], nh, cfg["hidden"],
                               H_raw, W_raw, img_seed], np.float32),
           "attn": attn[0], "maps": maps,
           "mask_0.6": threshold_masks(maps, 0.6), "mask_0.25": threshold_masks(maps, 0.25),
           # Features of the same image: final-norm CLS (model(x)), last-2-blocks CLS
           # concatenated, and CLS interleaved with the mean patch token (avgpool, n=1).
           "feat_cls": outs[-1][0, 0],
           "feat_n2": torch.cat([o[0, 0] for o in outs[-2:]], dim=-1),
           "feat_avgpool": torch.cat((outs[-1][:, 0].unsqueeze(-1),
                                      outs[-1][:, 1:].mean(dim=1).unsqueeze(-1)), dim=-1).reshape(-1),
           "tokens": outs[-1][0]}
    print("attention: grid", H // p, "x", W // p, "mask 0.6 keeps", out["mask_0.6"].sum(1).tolist())
    write(os.path.join(OUT, "eval_attention.bin"), out)


def e2e_image(h, w, seed):
    """uint8 (h, w, 3) image from fill; tests/test_eval_cli.c makes the same bytes."""
    return np.clip(np.floor(fill((h, w, 3), seed, 0, 256)), 0, 255).astype(np.uint8)


def make_attention_e2e():
    """End to end as visualize_attention.py: a DINO training-checkpoint-shaped
    .pth (teacher: backbone.*, student: module.backbone.*, different weights),
    a 53x71 PNG resized with Resize((40, 60)) (PIL bilinear), ToTensor,
    Normalize, cropped to multiples of 8, last block's CLS attention per head."""
    import torch
    from PIL import Image
    import torchvision.transforms as T
    cfg = dict(img_size=32, patch=8, dim=48, depth=2, heads=3, hidden=192)
    pt, ps = {}, {}
    run_t = tiny_vit(**cfg, params_out=pt)
    run_s = tiny_vit(**cfg, seed_base=PARAM_SEED + 500, params_out=ps)
    ckpt = {"teacher": {"backbone." + k: v for k, v in pt.items()},
            "student": {"module.backbone." + k: v for k, v in ps.items()},
            "epoch": 3}
    torch.save(ckpt, os.path.join(OUT, "eval_tiny_vit.pth"))
    img = Image.fromarray(e2e_image(53, 71, 6100))
    tf = T.Compose([T.Resize((40, 60)), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = tf(img)
    p = cfg["patch"]
    x = x[:, :x.shape[1] - x.shape[1] % p, :x.shape[2] - x.shape[2] % p].unsqueeze(0)
    out = {}
    for tag, run in (("teacher", run_t), ("student", run_s)):
        with torch.no_grad():
            _, attn = run(x)
        maps = attn[0, :, 0, 1:].reshape(cfg["heads"], -1)
        out[f"maps_{tag}"] = maps
        out[f"mask_{tag}"] = threshold_masks(maps, 0.6)
    print("attention e2e: input", tuple(x.shape), "maps", tuple(out["maps_teacher"].shape))
    write(os.path.join(OUT, "eval_attention_e2e.bin"), out)


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-npy", metavar="DIR")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    if args.check_npy:
        check_npy(args.check_npy)
        return
    os.makedirs(OUT, exist_ok=True)
    makers = {"knn": make_knn, "npy": make_npy, "linear": make_linear,
              "attention": make_attention, "attention_e2e": make_attention_e2e}
    for name, fn in makers.items():
        if not args.only or name in args.only:
            fn()


if __name__ == "__main__":
    main()
