"""Writes the reference fixtures of the ResNet tests (tests/test_resnet.c).

The model is torchvision's ResNet with its own Bottleneck (v1.5, the stride
on the 3x3 conv) and fc = Identity, as the reference's MultiCropWrapper uses
resnet50(). For a small fixture the stage widths are those of resnet50
divided by 16 (planes 4, 8, 16, 32, so every stage's first block has a
downsample, as in resnet50) with blocks [2, 1, 2, 1]; the stem stays
torchvision's (conv 7x7/2 with 64 channels, max-pool 3x3/2). The "small"
case swaps the stem for conv 3x3/1 and no max-pool (28 px inputs). The script
first checks that the same code at planes 64..512 and blocks [3, 4, 6, 3]
is torchvision's resnet50() (state_dict keys and shapes, and its output on one
image with the same weights).

Values are regenerated in C with fixture_fill, so only outputs are stored:
  tensor i of the state_dict without num_batches_tracked (conv weights, then
  BatchNorm weight, bias, running_mean, running_var)
      = fill(shape, PARAM_SEED + i, lo, hi) with (lo, hi) from param_range();
  images of case k = fill((B, 3, S, S), IMG_SEED + 16*k, -2, 2);
  R = fill((B, D), R_SEED + k, -1, 1); the loss is sum(features * R).
Per case: "<tag>.eval" (features in eval mode), "<tag>.train" (features in
train mode, batch statistics), "<tag>.grad.<name>" for every parameter,
"<tag>.after.<name>" for every running statistic after the train forward.
The reference runs in float64 (weights and inputs are float32 values).

Model files for loading (tests/test_resnet_io.c), of the "std" model with
its filled weights (the teacher) in torchvision's layout:
  resnet_tiny.pth       the state_dict as torch.save writes it (with
                        num_batches_tracked), like dino_resnet50_pretrain.pth;
  resnet_tiny_full.pth  a DINO training checkpoint as the reference writes it
                        for a ResNet (teacher and student wrapped in
                        DistributedDataParallel: module.backbone.*, module.head.*),
                        the student's weights = the teacher's + 0.01;
and "pth.teacher" / "pth.student": their eval-mode features of
fill((2, 3, 64, 64), IMG_SEED + 32, -2, 2).

The multi-crop case "mc" (tests/test_resnet.c): the reference's
MultiCropWrapper over the "std" backbone and a DINOHead (128 -> 32 -> 16 ->
64, 3 layers, norm_last_layer False), in train mode, on a batch of B = 4
with 2 global crops of 64 px (fill(seed IMG_SEED + 48)) and 3 local crops of
48 px (seed IMG_SEED + 49), each group crop-major (crop c of image b at row
c*B + b); parameter i of the table (backbone.* then head.*) filled as above;
loss sum(logits * R), R = fill((20, 64), R_SEED + 3): "mc.logits",
"mc.grad.<name>", "mc.after.<running statistic>" (updated by both groups'
forwards, the global group's first).

Run: PY=$(tools/venv.sh); $PY tools/make_resnet_fixtures.py
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import Bottleneck, ResNet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402

PARAM_SEED = 1000
IMG_SEED = 5000
R_SEED = 7000
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def param_range(name, shape):
    """tests/engine_fill.h has the same rule (engine_fill_resnet_params, g_one 0)."""
    if name.endswith("running_mean"):
        return -0.3, 0.3
    if name.endswith("running_var"):
        return 0.5, 2.0
    if name.endswith(".bias"):
        return -0.2, 0.2
    if len(shape) == 1:  # BatchNorm weight
        return 0.5, 1.5
    fan_in = int(np.prod(shape)) // shape[0]
    a = float(np.float32(math.sqrt(6.0 / fan_in)))  # He-uniform: activations keep their scale
    return -a, a


class ScaledResNet(ResNet):
    """torchvision's ResNet whose stages have planes // div."""

    def __init__(self, layers, div, small_stem=False):
        self.div = div
        super().__init__(Bottleneck, layers)
        self.fc = nn.Identity()
        if small_stem:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        return super()._make_layer(block, planes // self.div, blocks, stride, dilate)


def tensors(model):
    return [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def fill_model(model):
    with torch.no_grad():
        for i, (name, t) in enumerate(tensors(model)):
            lo, hi = param_range(name, tuple(t.shape))
            t.copy_(torch.from_numpy(fill(tuple(t.shape), PARAM_SEED + i, lo, hi)).to(t.dtype))


def check_resnet50():
    ours = ScaledResNet([3, 4, 6, 3], 1)
    ref = torchvision.models.resnet50()
    ref.fc = nn.Identity()
    a, b = ours.state_dict(), ref.state_dict()
    assert list(a) == list(b), "key order differs from torchvision's resnet50"
    assert all(a[k].shape == b[k].shape for k in a)
    fill_model(ours)
    ref.load_state_dict(ours.state_dict())
    ours.eval(), ref.eval()
    x = torch.from_numpy(fill((1, 3, 64, 64), IMG_SEED, -2, 2))
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
        assert ref(x).shape == (1, 2048)


def case(out, tag, k, small_stem, B, S):
    model = ScaledResNet([2, 1, 2, 1], 16, small_stem).double()
    fill_model(model)
    x = torch.from_numpy(fill((B, 3, S, S), IMG_SEED + 16 * k, -2, 2)).double()
    model.eval()
    with torch.no_grad():
        out[f"{tag}.eval"] = model(x)
    model.train()
    feat = model(x)
    R = torch.from_numpy(fill(tuple(feat.shape), R_SEED + k, -1, 1)).double()
    (feat * R).sum().backward()
    out[f"{tag}.train"] = feat.detach()
    for name, p in model.named_parameters():
        out[f"{tag}.grad.{name}"] = p.grad
    for name, t in model.state_dict().items():
        if "running" in name:
            out[f"{tag}.after.{name}"] = t
    print(f"{tag}: {B}x3x{S}x{S} -> {tuple(feat.shape)}, "
          f"{sum(p.numel() for p in model.parameters())} parameters")


def head_state(in_dim, hidden, bottleneck, out):
    r = lambda seed, *sh: torch.from_numpy(fill(sh, seed, -0.2, 0.2))  # noqa: E731
    return {
        "mlp.0.weight": r(1, hidden, in_dim), "mlp.0.bias": r(2, hidden),
        "mlp.2.weight": r(3, hidden, hidden), "mlp.2.bias": r(4, hidden),
        "mlp.4.weight": r(5, bottleneck, hidden), "mlp.4.bias": r(6, bottleneck),
        "last_layer.weight_g": torch.ones(out, 1),
        "last_layer.weight_v": r(7, out, bottleneck),
    }


def model_files(out):
    model = ScaledResNet([2, 1, 2, 1], 16, False)
    fill_model(model)
    model.eval()
    sd = model.state_dict()
    torch.save(sd, os.path.join(OUT, "resnet_tiny.pth"))
    student_sd = {k: (v + 0.01 if v.is_floating_point() else v.clone()) for k, v in sd.items()}
    head = head_state(128, 32, 16, 64)
    teacher = {"module.backbone." + k: v for k, v in sd.items()}
    teacher.update({"module.head." + k: v for k, v in head.items()})
    student = {"module.backbone." + k: v for k, v in student_sd.items()}
    student.update({"module.head." + k: v + 0.01 for k, v in head.items()})
    args = argparse.Namespace(arch="resnet50", out_dim=64, norm_last_layer=True, use_bn_in_head=False,
                              optimizer="sgd", lr=0.03, weight_decay=1e-4, weight_decay_end=1e-4)
    torch.save({"teacher": teacher, "student": student, "epoch": 3, "args": args},
               os.path.join(OUT, "resnet_tiny_full.pth"))
    x = torch.from_numpy(fill((2, 3, 64, 64), IMG_SEED + 32, -2, 2))
    with torch.no_grad():
        out["pth.teacher"] = model(x)
        model.load_state_dict(student_sd)
        out["pth.student"] = model(x)


def multicrop_case(out):
    from make_engine_fixtures import DINOHead

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = ScaledResNet([2, 1, 2, 1], 16, False)
            self.head = DINOHead(128, 64, norm_last_layer=False, nlayers=3, hidden_dim=32,
                                 bottleneck_dim=16)

        def forward(self, groups):
            return self.head(torch.cat([self.backbone(g) for g in groups]))

    model = Wrapper().double()
    fill_model(model)
    model.train()
    # Sizes where BatchNorm's last stages see enough values that float32
    # itself stays within the tests' tolerance (PyTorch's float32 run: logits
    # 3.4e-6, gradients 1.1e-5 of their scale; at B = 2 with 32 px local crops
    # 8.8e-6 and 3.1e-5).
    B = 4
    groups = [torch.from_numpy(fill((2 * B, 3, 64, 64), IMG_SEED + 48, -2, 2)).double(),
              torch.from_numpy(fill((3 * B, 3, 48, 48), IMG_SEED + 49, -2, 2)).double()]
    logits = model(groups)
    R = torch.from_numpy(fill(tuple(logits.shape), R_SEED + 3, -1, 1)).double()
    (logits * R).sum().backward()
    out["mc.logits"] = logits.detach()
    for name, p in model.named_parameters():
        out[f"mc.grad.{name}"] = p.grad
    for name, t in model.state_dict().items():
        if "running" in name:
            out[f"mc.after.{name}"] = t
    print(f"mc: logits {tuple(logits.shape)}")


def main():
    torch.manual_seed(0)
    check_resnet50()
    out = {}
    case(out, "std", 0, False, 3, 64)
    case(out, "small", 1, True, 4, 28)
    model_files(out)
    multicrop_case(out)
    path = os.path.join(OUT, "resnet_engine.bin")
    write(path, out)
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
