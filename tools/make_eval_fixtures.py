"""Reference fixtures for the evaluation tests (tests/test_knn.c, test_npy.c,
test_linear.c, test_attnmap.c), computed with NumPy and PyTorch on CPU.

  PY=$(tools/venv.sh); $PY tools/make_eval_fixtures.py            # writes tests/fixtures/eval_*
  $PY tools/make_eval_fixtures.py --check-npy DIR                  # numpy reads the .npy files C wrote

Inputs are generated with fixture_io.fill so the C tests regenerate them
instead of reading them from disk; only labels and results are stored.
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
    makers = {"knn": make_knn, "npy": make_npy, "linear": make_linear}
    for name, fn in makers.items():
        if not args.only or name in args.only:
            fn()


if __name__ == "__main__":
    main()
