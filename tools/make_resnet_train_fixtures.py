"""Three DINO training iterations with a small ResNet (tests/test_resnet_train.c),
as the reference's main_dino.py trains a torchvision --arch:

  - the model is `dino train --arch resnet_tiny`: torchvision's ResNet with its
    Bottleneck (v1.5) at resnet50's widths / 16 (a 16-channel conv1 3x3/1
    without max-pool, planes 4, 8, 16, 32), one block per stage, fc = Identity
    (tools/make_resnet_fixtures.py's ScaledResNet), and a DINOHead
    (128 -> 32 -> 16 -> 64, 3 layers, norm_last_layer True: weight_g fixed);
  - MultiCropWrapper: the student runs the 2 global crops (28 px) as one
    batch and the 2 local crops (14 px) as another, the teacher the global
    crops; both in train mode, so BatchNorm normalises with the batch's
    statistics and every forward updates the running statistics (the teacher's
    by its own forward: the EMA below covers parameters only);
  - DINOLoss with the reference's centring (tools/make_train_fixtures.py's
    RefDINOLoss), the cosine schedules, per-parameter gradient clipping
    (clip_gradients), the last layer's gradient cancelled in epoch 0, the
    optimizer with the reference's parameter groups (get_params_groups:
    biases and 1-D tensors, BatchNorm's weights among them, without weight
    decay), then the teacher EMA over student.parameters() /
    teacher.parameters();
  - the optimizer is torch.optim.SGD(momentum 0.9) ("sgd", the reference's
    ResNet recipe) or DINO's LARS ("lars", RefLARS);
  - "sgd_bnhead": as "sgd" with --use_bn_in_head (DINOHead(use_bn=True): a
    BatchNorm1d after each hidden Linear, whose batch statistics are over all
    crops of one head call: the teacher's 2B global crops, the student's
    (2 + n_local)·B crops; running statistics updated by each forward, the
    EMA leaving them alone as the backbone's).

The reference runs in float64 (weights and inputs are float32 values), so the
fixture holds the exact result that the C code's float32 is compared with.

Values regenerated in C with fixture_fill, so only outputs are stored:
  table tensor i (backbone state_dict without num_batches_tracked, then
  head.mlp.*, head.last_layer.weight_g, head.last_layer.weight_v) =
  fill(shape, PARAM_SEED + i, lo, hi) with (lo, hi) from param_range();
  crops of step s: fill((2B, 3, 28, 28), IMG_SEED + 16 s) and
  fill((2B, 3, 14, 14), IMG_SEED + 16 s + 1), each crop-major.
Per step s: "s.loss", "s.temp", "s.sched" (lr, wd, momentum as split
doubles), "s.center", "s.nclipped", "s.grad.<name>" (after clipping; absent
when frozen), "s.student.<name>" and "s.teacher.<name>" for every table entry
(running statistics included), "s.mom.<name>" (the optimizer's momentum
buffer after the step). "cfg", "cfg.d", "clip".

Usage: PY=$(tools/venv.sh); $PY tools/make_resnet_train_fixtures.py [sgd|lars|sgd_bnhead ...]
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from torchvision.models.resnet import Bottleneck

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402
from make_engine_fixtures import DINOHead  # noqa: E402
from make_resnet_fixtures import param_range as backbone_param_range  # noqa: E402
from make_resnet_fixtures import ScaledResNet  # noqa: E402
from make_train_fixtures import RefDINOLoss, RefLARS, cosine_scheduler, split_double  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
PARAM_SEED = 1000
IMG_SEED = 9700
torch.set_num_threads(1)

CFG = dict(img=28, local=14, hidden=32, bottleneck=16, out_dim=64, B=4, n_local=2, niter=2,
           epochs=4, lr=2.0, min_lr=1e-3, warmup_epochs=0, wd=0.05, wd_end=0.1, momentum=0.9,
           wtt=0.04, tt=0.07, wtt_epochs=2, freeze=1, steps=3)


def param_range(name, shape):
    """make_resnet_fixtures.param_range, and weight norm's g at 1 (the head's
    last layer); tests/engine_fill.h has the same rule (g_one 1)."""
    if name.endswith("weight_g"):
        return 1.0, 1.0
    return backbone_param_range(name, shape)


def tiny_resnet():
    """ScaledResNet at resnet50's widths / 16 with one block per stage, on a
    16-channel conv 3x3/1 stem without max-pool: the layers are rebuilt after
    the stem so that torchvision's _make_layer starts from 16 channels."""
    m = ScaledResNet([1, 1, 1, 1], 16, small_stem=True)
    m.inplanes = 16
    m.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
    m.bn1 = nn.BatchNorm2d(16)
    m.layer1 = m._make_layer(Bottleneck, 64, 1)
    m.layer2 = m._make_layer(Bottleneck, 128, 1, stride=2)
    m.layer3 = m._make_layer(Bottleneck, 256, 1, stride=2)
    m.layer4 = m._make_layer(Bottleneck, 512, 1, stride=2)
    return m


class Dino(torch.nn.Module):
    def __init__(self, c, use_bn=False):
        super().__init__()
        self.backbone = tiny_resnet()
        self.head = DINOHead(128, c["out_dim"], norm_last_layer=True, nlayers=3,
                             hidden_dim=c["hidden"], bottleneck_dim=c["bottleneck"], use_bn=use_bn)

    def forward(self, groups):
        """MultiCropWrapper: one backbone pass per resolution group."""
        return self.head(torch.cat([self.backbone(g) for g in groups]))


def table(model):
    return [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def fill_model(model):
    with torch.no_grad():
        for i, (name, t) in enumerate(table(model)):
            lo, hi = param_range(name, tuple(t.shape))
            t.copy_(torch.from_numpy(fill(tuple(t.shape), PARAM_SEED + i, lo, hi)).to(t.dtype))


def crops(s, c):
    B = c["B"]
    g0 = fill((2 * B, 3, c["img"], c["img"]), IMG_SEED + 16 * s, -2.0, 2.0)
    g1 = fill((c["n_local"] * B, 3, c["local"], c["local"]), IMG_SEED + 16 * s + 1, -2.0, 2.0)
    return torch.from_numpy(g0).double(), torch.from_numpy(g1).double()


# The smallest ReLU margin is printed: an input closer to 0 than float32's
# rounding (a few 1e-7 of its tensor's largest magnitude after a few layers)
# falls on either side depending on the C code's summation order, and one
# flipped element moves every gradient below it by ~1e-3 of its scale. No
# image seed keeps every input clear at this size (IMG_SEED 9100..9800: 5e-9
# to 2e-7); with 9100 oneDNN's convolutions flipped one element of step 1
# (sgd) at 1.1e-7, with 9700 (1e-7) both backends' orders pass.


def watch_relu_margins(model, worst):
    """Records in worst[0] the smallest |x| / max|x| over every ReLU input."""
    def hook(_mod, args):
        x = args[0].detach().abs()
        worst[0] = min(worst[0], (x.min() / x.max().clamp_min(1e-300)).item())
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_pre_hook(hook)


def make(kind):
    c = CFG
    use_bn = kind.endswith("_bnhead")
    student = Dino(c, use_bn).double()
    fill_model(student)
    teacher = Dino(c, use_bn).double()
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    student.train(), teacher.train()
    reg, noreg = [], []
    for name, p in student.named_parameters():
        if not p.requires_grad:
            continue
        (noreg if name.endswith(".bias") or len(p.shape) == 1 else reg).append(p)
    groups = [{"params": reg}, {"params": noreg, "weight_decay": 0.0}]
    if kind.startswith("sgd"):
        opt = torch.optim.SGD(groups, lr=0, momentum=0.9, foreach=False)
    else:
        opt = RefLARS(groups)
    ncrops = 2 + c["n_local"]
    loss_fn = RefDINOLoss(c["out_dim"], ncrops, c["wtt"], c["tt"], c["wtt_epochs"], c["epochs"])
    loss_fn.center = loss_fn.center.double()
    B = c["B"]
    lr_s = cosine_scheduler(c["lr"] * B / 256.0, c["min_lr"], c["epochs"], c["niter"], c["warmup_epochs"])
    wd_s = cosine_scheduler(c["wd"], c["wd_end"], c["epochs"], c["niter"])
    mom_s = cosine_scheduler(c["momentum"], 1, c["epochs"], c["niter"])
    out, clip, margin = {}, None, [1.0]
    watch_relu_margins(student, margin)
    watch_relu_margins(teacher, margin)
    for s in range(c["steps"]):
        epoch, it = s // c["niter"], s
        for i, pg in enumerate(opt.param_groups):
            pg["lr"] = lr_s[it]
            if i == 0:
                pg["weight_decay"] = wd_s[it]
        g0, g1 = crops(s, c)
        t_out = teacher([g0])
        s_out = student([g0, g1])
        loss, _, temp = loss_fn(s_out, t_out, epoch)
        opt.zero_grad()
        loss.backward()
        if clip is None:
            # between two per-tensor norms near the middle (the pair furthest
            # apart): some tensors clipped, some not, none near the threshold
            norms = sorted(p.grad.norm(2).item() for p in student.parameters() if p.grad is not None)
            m = len(norms) // 2
            j = max(range(m - 4, m + 4), key=lambda k: norms[k] / norms[k - 1])
            clip = float(np.float32(math.sqrt(norms[j - 1] * norms[j])))
        nclipped = 0
        for n_, p in student.named_parameters():
            if p.grad is not None:
                n = p.grad.data.norm(2)
                assert abs(n.item() - clip) > 1e-4 * clip, f"step {s}: {n_}'s norm is at the clipping threshold"
                coef = clip / (n + 1e-6)
                if coef < 1:
                    p.grad.data.mul_(coef)
                    nclipped += not (epoch < c["freeze"] and "last_layer" in n_)
        if epoch < c["freeze"]:
            for n_, p in student.named_parameters():
                if "last_layer" in n_:
                    p.grad = None
        grads = {n_: (p.grad.clone() if p.grad is not None else None) for n_, p in student.named_parameters()}
        opt.step()
        with torch.no_grad():
            m = mom_s[it]
            for pq, pk in zip(student.parameters(), teacher.parameters()):
                pk.data.mul_(m).add_((1 - m) * pq.detach().data)
        out[f"{s}.loss"] = [loss.item()]
        out[f"{s}.temp"] = [temp]
        out[f"{s}.sched"] = split_double([lr_s[it], wd_s[it], mom_s[it]])
        out[f"{s}.center"] = loss_fn.center[0].clone()
        out[f"{s}.nclipped"] = [nclipped]
        for n_, g in grads.items():
            if g is not None:
                out[f"{s}.grad.{n_}"] = g
        for n_, t in table(student):
            out[f"{s}.student.{n_}"] = t.detach().clone()
        for n_, t in table(teacher):
            out[f"{s}.teacher.{n_}"] = t.detach().clone()
        for n_, p in student.named_parameters():
            st = opt.state.get(p, {})
            buf = st.get("momentum_buffer", st.get("mu"))
            if buf is not None:
                out[f"{s}.mom.{n_}"] = buf.clone()
        print(f"  {kind} step {s}: loss {loss.item():.6f}, temp {temp}, lr {lr_s[it]:.4g}, {nclipped} tensors clipped, "
              f"ReLU inputs at least {margin[0]:.2g} of their scale from 0")
    out["clip"] = [clip]
    out["cfg"] = [c[k] for k in ["img", "local", "hidden", "bottleneck", "out_dim", "B", "n_local", "niter",
                                  "epochs", "warmup_epochs", "wtt_epochs", "freeze", "steps"]]
    out["cfg.d"] = split_double([c["lr"], c["min_lr"], c["wd"], c["wd_end"], c["momentum"], c["wtt"], c["tt"]])
    path = os.path.join(OUT, f"resnet_train_{kind}.bin")
    write(path, out)
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    for k in sys.argv[1:] or ["sgd", "lars", "sgd_bnhead"]:
        make(k)
