"""Reference fixtures for the training code (tests/test_loss.c, test_optim.c,
test_schedule.c, test_train_step.c), written from docs/DINO.md §4 and §6 with
PyTorch and numpy as the oracle. Inputs come from fixture_io.fill so the C
tests regenerate them instead of reading them.

Usage: PY=$(tools/venv.sh); $PY tools/make_train_fixtures.py [loss|optim|schedule|step|step_koleo|step_bnhead ...]
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import fill, write  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
torch.set_num_threads(1)


def T(a):
    return torch.from_numpy(np.array(a, dtype=np.float32))


def split_double(x):
    """A double as three float32 values hi + mid + lo, exact (the fixture format is
    float32 only); C adds them back in double."""
    x = np.asarray(x, dtype=np.float64)
    hi = x.astype(np.float32)
    mid = (x - hi.astype(np.float64)).astype(np.float32)
    lo = (x - hi.astype(np.float64) - mid.astype(np.float64)).astype(np.float32)
    assert np.all(hi.astype(np.float64) + mid.astype(np.float64) + lo.astype(np.float64) == x)
    return np.stack([hi, mid, lo])


# ---------------------------------------------------------------- loss (docs/DINO.md §4)
class RefDINOLoss:
    """DINOLoss as docs/DINO.md §4 describes it."""

    def __init__(self, out_dim, ncrops, warmup_teacher_temp, teacher_temp,
                 warmup_teacher_temp_epochs, nepochs, student_temp=0.1, center_momentum=0.9,
                 sinkhorn_iters=0):
        self.sinkhorn_iters = sinkhorn_iters
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.ncrops = ncrops
        self.center = torch.zeros(1, out_dim)
        self.teacher_temp_schedule = np.concatenate((
            np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
            np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp))

    def __call__(self, student_output, teacher_output, epoch):
        s = (student_output / self.student_temp).chunk(self.ncrops)
        temp = self.teacher_temp_schedule[epoch]
        if self.sinkhorn_iters:
            q = sinkhorn_knopp(teacher_output, temp, self.sinkhorn_iters).detach().chunk(2)
        else:
            q = F.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)
        total, n = 0, 0
        for iq in range(2):
            for v in range(self.ncrops):
                if v == iq:
                    continue
                total = total + torch.sum(-q[iq] * F.log_softmax(s[v], dim=-1), dim=-1).mean()
                n += 1
        total = total / n
        self.update_center(teacher_output)
        return total, torch.cat(q), temp

    @torch.no_grad()
    def update_center(self, teacher_output):
        bc = torch.sum(teacher_output, dim=0, keepdim=True) / len(teacher_output)
        self.center = self.center * self.center_momentum + bc * (1 - self.center_momentum)


def sinkhorn_knopp(teacher, temp, iters):
    """DINOv2's sinkhorn_knopp_teacher on one process, in float32: exp(t/τ)
    normalised to a total of one, then per prototype (over the rows) to 1/K and
    per row to 1/rows, `iters` times; rows finally scaled to sum to one."""
    Q = torch.exp(teacher / temp).t()  # (K, rows)
    K, rows = Q.shape
    Q /= Q.sum()
    for _ in range(iters):
        Q /= Q.sum(dim=1, keepdim=True)
        Q /= K
        Q /= Q.sum(dim=0, keepdim=True)
        Q /= rows
    Q *= rows
    return Q.t()


def entropies(q):
    q64 = q.double()
    h = -(q64 * torch.where(q64 > 0, q64.log(), torch.zeros_like(q64))).sum(-1).mean()
    m = q64.mean(0)
    hm = -(m * torch.where(m > 0, m.log(), torch.zeros_like(m))).sum()
    return float(h), float(hm)


def make_loss():
    cases = [
        # name, K, B, ncrops, scale of logits, epoch, (warm, final, warm epochs, nepochs),
        # center seed, Sinkhorn-Knopp iterations (0: the reference's centring)
        ("a", 300, 3, 4, 3.0, 1, (0.04, 0.07, 3, 5), 13, 0),
        ("b", 1000, 2, 6, 40.0, 4, (0.04, 0.04, 0, 5), 14, 0),   # large logits: stability
        # DINOv2's teacher on cosine-sized logits (its exp has no shift)
        ("c", 500, 3, 4, 1.0, 0, (0.04, 0.04, 0, 5), 15, 3),
    ]
    out = {}
    for name, K, B, nc, sc, epoch, (w, f, we, ne), cseed, sk in cases:
        student = T(fill([nc * B, K], 11, -sc, sc)).requires_grad_(True)
        teacher = T(fill([2 * B, K], 12, -sc, sc))
        L = RefDINOLoss(K, nc, w, f, we, ne, sinkhorn_iters=sk)
        L.center = T(fill([1, K], cseed, -0.5, 0.5))
        loss, q, temp = L(student, teacher, epoch)
        loss.backward()
        h, hm = entropies(q)
        p = f"{name}."
        out[p + "dims"] = [K, B, nc, epoch, we, ne, sk]
        out[p + "params"] = [sc, w, f, cseed]
        out[p + "loss"] = [loss.item()]
        out[p + "dstudent"] = student.grad
        out[p + "center_new"] = L.center[0]
        out[p + "temp"] = [temp]
        out[p + "entropy"] = [h, hm]
        out[p + "tprob"] = q
    write(os.path.join(OUT, "train_loss.bin"), out)


# ---------------------------------------------------------------- optimizers (docs/DINO.md §6)
class RefLARS(torch.optim.Optimizer):
    """LARS as docs/DINO.md §6 describes DINO's utils.LARS: weight decay and the trust
    ratio only for tensors with ndim != 1, then heavy-ball momentum."""

    def __init__(self, params, lr=0, weight_decay=0, momentum=0.9, eta=0.001):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if p.ndim != 1:
                    d = d.add(p, alpha=g["weight_decay"])
                    pn, un = torch.norm(p), torch.norm(d)
                    one = torch.ones_like(pn)
                    ratio = torch.where(pn > 0.0, torch.where(un > 0, g["eta"] * pn / un, one), one)
                    d = d.mul(ratio)
                st = self.state[p]
                if "mu" not in st:
                    st["mu"] = torch.zeros_like(p)
                mu = st["mu"]
                mu.mul_(g["momentum"]).add_(d)
                p.add_(mu, alpha=-g["lr"])


OPT_SHAPES = [("w", [37, 5]), ("bias", [11]), ("ln", [7]), ("last_layer", [4, 3, 2])]
OPT_STEPS = 6
CLIP_SCALE = [1.0, 0.5, 3.0, 0.2]


def opt_schedule(s):
    lr = 1e-3 * (s + 1) / 3.0 + 2e-4 * math.cos(s)
    wd = 0.04 + 0.07 * s
    return lr, wd


def make_optim():
    out = {}
    for kind in ["adamw", "sgd", "lars"]:
        params = [torch.nn.Parameter(T(fill(shape, 100 + i, -1.0, 1.0))) for i, (_, shape) in enumerate(OPT_SHAPES)]
        g0 = [params[0], params[3]]          # regularized
        g1 = [params[1], params[2]]          # no decay (bias, 1-D)
        groups = [{"params": g0}, {"params": g1, "weight_decay": 0.0}]
        if kind == "adamw":
            opt = torch.optim.AdamW(groups, foreach=False)
        elif kind == "sgd":
            opt = torch.optim.SGD(groups, lr=0, momentum=0.9, foreach=False)
        else:
            opt = RefLARS(groups)
        for s in range(OPT_STEPS):
            lr, wd = opt_schedule(s)
            for i, g in enumerate(opt.param_groups):
                g["lr"] = lr
                if i == 0:
                    g["weight_decay"] = wd
            for i, p in enumerate(params):
                # grads scaled by a per-step factor, some steps tiny, one large
                p.grad = T(fill(p.shape, 1000 + 10 * s + i, -1.0, 1.0) * (10.0 ** ((s % 3) - 1)))
            if s in (1, 2):
                params[3].grad = None  # frozen last layer: skipped entirely
            opt.step()
            for i, (name, _) in enumerate(OPT_SHAPES):
                out[f"{kind}.{s}.{name}"] = params[i].detach().clone()
                st = opt.state.get(params[i], {})
                if kind == "adamw" and "exp_avg" in st:
                    out[f"{kind}.{s}.{name}.m"] = st["exp_avg"].clone()
                    out[f"{kind}.{s}.{name}.v"] = st["exp_avg_sq"].clone()
                    out[f"{kind}.{s}.{name}.step"] = [float(st["step"])]
                if kind != "adamw" and ("momentum_buffer" in st or "mu" in st):
                    buf = st.get("momentum_buffer", st.get("mu"))
                    out[f"{kind}.{s}.{name}.m"] = buf.clone()
    # per-step lr/wd as the C test must use them (doubles split in two floats)
    lrs = [opt_schedule(s)[0] for s in range(OPT_STEPS)]
    wds = [opt_schedule(s)[1] for s in range(OPT_STEPS)]
    out["lr"] = split_double(lrs)
    out["wd"] = split_double(wds)

    # clip_gradients: per-parameter norm, scaled by clip/(norm+1e-6) when < 1
    clip = 3.0
    for i, (name, shape) in enumerate(OPT_SHAPES):
        g = T(fill(shape, 2000 + i, -1.0, 1.0) * np.float32(CLIP_SCALE[i]))
        n = g.norm(2)
        c = clip / (n + 1e-6)
        if c < 1:
            g.mul_(c)
        out[f"clip.{name}"] = g
    # teacher EMA
    ms = [0.996, 0.9995, 1.0 - 0.002 * (1 + math.cos(math.pi * 3 / 7))]
    for j, m in enumerate(ms):
        m = np.float64(m)
        t = T(fill([257], 3000 + j, -1.0, 1.0))
        s_ = T(fill([257], 3100 + j, -1.0, 1.0))
        t.mul_(m).add_((1 - m) * s_)
        out[f"ema.{j}"] = t
    out["ema.m"] = split_double(ms)
    write(os.path.join(OUT, "train_optim.bin"), out)


# ---------------------------------------------------------------- schedules (docs/DINO.md §6)
def cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    """The reference's cosine_scheduler as docs/DINO.md §6 describes it."""
    warmup = np.array([])
    wi = warmup_epochs * niter_per_ep
    if warmup_epochs > 0:
        warmup = np.linspace(start_warmup_value, base_value, wi)
    iters = np.arange(epochs * niter_per_ep - wi)
    sched = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
    sched = np.concatenate((warmup, sched))
    assert len(sched) == epochs * niter_per_ep
    return sched


SCHED_CASES = [
    # base, final, epochs, niter, warmup
    (0.0005 * 512 / 256, 1e-6, 100, 37, 10),
    (0.04, 0.4, 100, 37, 0),
    (0.996, 1.0, 100, 37, 0),
    (0.0005 * 64 / 256, 1e-6, 7, 5, 2),
    (0.03, 0.03, 3, 4, 1),
]


def make_schedule():
    out = {}
    for i, (b, f, e, n, w) in enumerate(SCHED_CASES):
        s = cosine_scheduler(b, f, e, n, w)
        out[f"s{i}.args"] = [b, f, e, n, w]
        out[f"s{i}"] = split_double(s)
    tt = np.concatenate((np.linspace(0.04, 0.07, 30), np.ones(70) * 0.07))
    out["ttemp"] = split_double(tt)
    write(os.path.join(OUT, "train_schedule.bin"), out)



# ---------------------------------------------------------------- full training steps (docs/DINO.md §4, §6)
# The tiny model is the engine fixtures' (tools/make_engine_fixtures.py: ViT,
# DINOHead, MultiCropWrapper written from docs/DINO.md), initialised with the same
# seeded fill scheme, so tests/test_train_step.c regenerates it in C.
STEP_CFG = dict(img=16, patch=4, dim=24, depth=2, heads=2, hidden=32, bottleneck=16, out_dim=64,
                B=2, n_local=2, local=8, niter=2, epochs=4, lr=0.3, min_lr=1e-5, warmup_epochs=0,
                wd=0.04, wd_end=0.4, momentum=0.9, wtt=0.04, tt=0.07, wtt_epochs=2, freeze=1,
                steps=3)
STEP_IMG_SEED = 9000


def _engine():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        import make_engine_fixtures as E  # noqa: F401
    except ImportError:  # before the engine is merged: its worktree
        sys.path.insert(0, os.path.join(here, "..", "..", "engine", "tools"))
        import make_engine_fixtures as E
    return E


def step_crops(s, c):
    B = c["B"]
    g0 = fill((2 * B, 3, c["img"], c["img"]), STEP_IMG_SEED + 16 * s, -2.0, 2.0)
    g1 = fill((c["n_local"] * B, 3, c["local"], c["local"]), STEP_IMG_SEED + 16 * s + 1, -2.0, 2.0)
    crops = [torch.from_numpy(g0[i * B:(i + 1) * B]) for i in range(2)]
    crops += [torch.from_numpy(g1[i * B:(i + 1) * B]) for i in range(c["n_local"])]
    return crops


def koleo_loss(x, eps=1e-8):
    """DINOv2's KoLeoLoss: −mean log distance to the nearest neighbour after L2
    normalisation (F.normalize, then nn.PairwiseDistance(2, eps))."""
    u = F.normalize(x, eps=eps, p=2, dim=-1)
    with torch.no_grad():
        dots = u @ u.t()
        dots.fill_diagonal_(-1)
        nn_index = dots.max(dim=1).indices
    d = F.pairwise_distance(u, u[nn_index], p=2, eps=eps)
    return -torch.log(d + eps).mean()


def make_step_koleo():
    make_step(koleo=0.1, out_name="train_step_koleo.bin")


def make_step_bnhead():
    make_step(use_bn=True, out_name="train_step_bnhead.bin")


def make_step(koleo=0.0, out_name="train_step.bin", use_bn=False):
    """koleo > 0: DINOv2's KoLeo on the student's CLS features of each global
    crop, that weight times their sum added to the DINO loss. use_bn: the
    head with BatchNorm1d (--use_bn_in_head), whose batch statistics are over
    all crops of one head call (MultiCropWrapper: the teacher's 2B global
    crops, the student's (2 + n_local)·B), in train mode for both, the
    running statistics ("s.student.<name>", "s.teacher.<name>" too) moved by
    each one's own forward and left alone by the EMA."""
    E = _engine()
    c = STEP_CFG

    def build():
        vit = E.ViT(c["img"], c["patch"], c["dim"], c["depth"], c["heads"], 4 * c["dim"])
        head = E.DINOHead(c["dim"], c["out_dim"], norm_last_layer=False, nlayers=3,
                          hidden_dim=c["hidden"], bottleneck_dim=c["bottleneck"], use_bn=use_bn)
        return E.Dino(vit, head)

    student = build()
    E.fill_params(student)
    teacher = build()
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    # get_params_groups: biases and 1-D tensors without weight decay
    reg, noreg = [], []
    for name, p in student.named_parameters():
        if not p.requires_grad:
            continue
        (noreg if name.endswith(".bias") or len(p.shape) == 1 else reg).append(p)
    opt = torch.optim.AdamW([{"params": reg}, {"params": noreg, "weight_decay": 0.0}], foreach=False)
    ncrops = 2 + c["n_local"]
    loss_fn = RefDINOLoss(c["out_dim"], ncrops, c["wtt"], c["tt"], c["wtt_epochs"], c["epochs"])
    B = c["B"]
    lr_s = cosine_scheduler(c["lr"] * B / 256.0, c["min_lr"], c["epochs"], c["niter"], c["warmup_epochs"])
    wd_s = cosine_scheduler(c["wd"], c["wd_end"], c["epochs"], c["niter"])
    mom_s = cosine_scheduler(c["momentum"], 1, c["epochs"], c["niter"])
    out = {}
    clip = None
    for s in range(c["steps"]):
        epoch, it = s // c["niter"], s
        for i, pg in enumerate(opt.param_groups):
            pg["lr"] = lr_s[it]
            if i == 0:
                pg["weight_decay"] = wd_s[it]
        crops = step_crops(s, c)
        t_out = teacher.multicrop(crops[:2], [None])
        s_out, s_feat = student.multicrop(crops, [None, None], with_features=True)
        loss, _, temp = loss_fn(s_out, t_out, epoch)
        if koleo:
            kl = sum(koleo_loss(f) for f in s_feat[:2 * B].chunk(2))
            loss = loss + koleo * kl
            out[f"{s}.koleo"] = [kl.item()]
        opt.zero_grad()
        loss.backward()
        if clip is None:
            # a threshold in the middle of the per-tensor norms, so that some tensors are
            # clipped and some not, halfway between two neighbours
            norms = sorted(p.grad.norm(2).item() for p in student.parameters() if p.grad is not None)
            m = len(norms) // 2
            clip = float(np.float32((norms[m - 1] + norms[m]) / 2))
        nclipped = 0  # counted over the tensors that keep their gradient this step
        for n_, p in student.named_parameters():  # clip_gradients (docs/DINO.md §6)
            if p.grad is not None:
                n = p.grad.data.norm(2)
                # a norm this close to the threshold is clipped or not by summation order
                assert abs(n.item() - clip) > 1e-5 * clip, f"step {s}: {n_}'s norm is at the clipping threshold"
                coef = clip / (n + 1e-6)
                if coef < 1:
                    p.grad.data.mul_(coef)
                    nclipped += not (epoch < c["freeze"] and "last_layer" in n_)
        if epoch < c["freeze"]:  # cancel_gradients_last_layer
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
        out[f"{s}.center"] = loss_fn.center[0]
        out[f"{s}.nclipped"] = [nclipped]
        for n_, p in student.named_parameters():
            out[f"{s}.student.{n_}"] = p.detach().clone()
            if grads[n_] is not None:
                out[f"{s}.grad.{n_}"] = grads[n_]
        for n_, p in teacher.named_parameters():
            out[f"{s}.teacher.{n_}"] = p.detach().clone()
        for name, model in (("student", student), ("teacher", teacher)):
            for n_, b in model.named_buffers():
                if not n_.endswith("num_batches_tracked"):
                    out[f"{s}.{name}.{n_}"] = b.detach().clone()
        # AdamW's moments after the step: with the student, teacher and centre
        # above they are the whole state the next step starts from, so the
        # test can run each step from the reference's state, not its own.
        if s + 1 < c["steps"]:
            for n_, p in student.named_parameters():
                if p in opt.state:
                    out[f"{s}.adam_m.{n_}"] = opt.state[p]["exp_avg"].clone()
                    out[f"{s}.adam_v.{n_}"] = opt.state[p]["exp_avg_sq"].clone()
        print(f"  step {s}: loss {loss.item():.6f}, temp {temp}, lr {lr_s[it]:.4g}, {nclipped} tensors clipped")
    out["clip"] = [clip]
    out["cfg"] = [c[k] for k in ["img", "patch", "dim", "depth", "heads", "hidden", "bottleneck", "out_dim",
                                  "B", "n_local", "local", "niter", "epochs", "warmup_epochs",
                                  "wtt_epochs", "freeze", "steps"]]
    out["cfg.d"] = split_double([c["lr"], c["min_lr"], c["wd"], c["wd_end"], c["momentum"], c["wtt"], c["tt"]])
    if koleo:
        out["koleo"] = [koleo]
    if use_bn:
        out["use_bn_in_head"] = [1]
    write(os.path.join(OUT, out_name), out)


if __name__ == "__main__":
    what = sys.argv[1:] or ["loss", "optim", "schedule", "step", "step_koleo", "step_bnhead"]
    for w in what:
        globals()["make_" + w]()
        print("wrote", w)
