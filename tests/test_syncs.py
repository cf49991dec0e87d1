"""A training step reads nothing on the host in steady state (issue: speed at GPU scale).

On a GPU every host read (``.item()``, ``if tensor:``, a boolean-mask gather, ``nonzero``, a
constant copied from the host) makes the CPU wait for the queued kernels. These tests count the
reads on the CPU with :class:`sslab.bench.SyncCounter` -- through the engine's real Lightning loop
for every method the issue names -- and check that the sync-free rewrites (masked colour jitter,
foreach EMA / LARS / clipping, device-side finiteness check, masked online probe, host-mirrored
counters) compute what the code they replaced computed.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sslab.bench import SyncCounter
from sslab.bench.case import Case, case_config, case_module, synthetic_images
from sslab.bench.timing import engine_loop
from sslab.data.pipelines import view_pipeline
from sslab.data.views import (
    BRIGHTNESS,
    CONTRAST,
    HUE,
    SATURATION,
    ViewSpec,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
)
from sslab.methods import StepOutput

#: the methods whose steady-state step must be free of host reads (the issue's list)
SYNC_FREE = ("simclr", "byol", "simsiam", "moco_v3", "vicreg", "barlow_twins", "directpred", "directcopy", "swav", "dino")


# --- the counter ---------------------------------------------------------------------------------------------------

def test_counter_counts_each_kind_of_host_read_and_nothing_else():
    x = torch.randn(16, 4)
    mask = x[:, 0] > 0
    with SyncCounter() as c:
        y = (x * 2 + 1).relu().sum(0)  # plain arithmetic: no read
        _ = torch.where(mask[:, None], x, 0.0)
        _ = x[:, :2].clone()
    assert c.syncs == 0 and c.host_copies == 0
    cases = {
        "item": lambda: y[0].item(),
        "bool": lambda: bool(y[0] > 0),
        "if": lambda: 1 if (y > 0).any() else 0,
        "float": lambda: float(y[0]),
        "nonzero": lambda: mask.nonzero(),
        "boolean gather": lambda: x[mask],
        "boolean assignment": lambda: x.clone().__setitem__(mask, 0.0),
        "masked_select": lambda: torch.masked_select(x, mask[:, None]),
        "tolist": lambda: y.tolist(),
        "numpy": lambda: y.numpy(),
        "repeat_interleave": lambda: torch.repeat_interleave(torch.tensor([1, 2])),
        "unique": lambda: torch.unique(mask),
    }
    for name, fn in cases.items():
        with SyncCounter() as c:
            fn()
        assert c.syncs >= 1, name
    with SyncCounter() as c:
        torch.tensor([1.0, 2.0])
        x.new_tensor([3.0])
    assert c.host_copies == 2 and c.syncs == 0


def test_counter_sees_the_backward_pass_and_names_the_line():
    w = torch.randn(3, requires_grad=True)

    class ReadInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * float(g.sum())  # a host read inside backward

    with SyncCounter(where=True) as c:
        ReadInBackward.apply(w).sum().backward()
    assert c.syncs == 1
    (place,) = c.places
    assert place.startswith("tests/test_syncs.py:") or "test_syncs.py" in place


# --- the views -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,resolution,channels", [("byol", "cifar", 3), ("simclr", "stl", 3), ("vicreg", "cifar", 3),
                                                      ("dino", "cifar", 3), ("byol", "mnist", 1)])
def test_views_make_no_host_reads(name, resolution, channels):
    from dataclasses import replace

    pipe = view_pipeline(name, resolution, mean=(0.5,) * channels, std=(0.25,) * channels,
                         local_crops=2 if name == "dino" else None)
    size = {"mnist": 28, "cifar": 32, "stl": 96}[resolution]
    x = torch.randint(0, 256, (16, channels, size, size), dtype=torch.uint8)
    masked, gathered = replace(pipe, masked=True), replace(pipe, masked=False)
    masked(x, torch.Generator().manual_seed(0))  # constants made once, outside the count
    with SyncCounter(where=True) as c:
        views = masked(x, torch.Generator().manual_seed(1))
    assert len(views) == pipe.num_views
    assert c.syncs == 0 and c.host_copies == 0, c.places
    # the CPU route (gathering the samples a transform applies to) gives the same views
    for a, b in zip(views, gathered(x, torch.Generator().manual_seed(1))):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    with SyncCounter() as c:
        pipe(x, torch.Generator().manual_seed(1))
    assert c.syncs > 0  # left to choose (masked=None), a pipeline on the CPU takes the gathering route


def _jitter_reference(x: torch.Tensor, spec: ViewSpec, seed: int) -> torch.Tensor:
    """torchvision's ColorJitter one image at a time, in that image's own random order, with the factors
    drawn from the same generator stream as :func:`color_jitter`."""
    g = torch.Generator().manual_seed(seed)
    b = x.shape[0]
    ops, factors = [], []
    for op, strength in ((BRIGHTNESS, spec.brightness), (CONTRAST, spec.contrast), (SATURATION, spec.saturation)):
        if strength > 0:
            ops.append(op)
            factors.append(max(0.0, 1 - strength) + (1 + strength - max(0.0, 1 - strength)) * torch.rand(b, generator=g))
    if spec.hue > 0:
        ops.append(HUE)
        factors.append(-spec.hue + 2 * spec.hue * torch.rand(b, generator=g))
    order = torch.rand(b, len(ops), generator=g).argsort(1)
    fns = {BRIGHTNESS: adjust_brightness, CONTRAST: adjust_contrast, SATURATION: adjust_saturation, HUE: adjust_hue}
    out = []
    for i in range(b):
        y = x[i : i + 1]
        for k in order[i].tolist():
            y = fns[ops[k]](y, factors[k][i : i + 1])
        out.append(y)
    return torch.cat(out)


@pytest.mark.parametrize("strengths", [dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1),
                                       dict(brightness=0.0, contrast=0.8, saturation=0.0, hue=0.2),
                                       dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.0)])
def test_both_jitter_routes_equal_each_image_jittered_in_its_own_order(strengths):
    x = torch.rand(64, 3, 6, 6)
    spec = ViewSpec(size=6, **strengths)
    ref = _jitter_reference(x, spec, 3)
    for masked in (True, False):
        ours = color_jitter(x, spec, torch.Generator().manual_seed(3), masked=masked)
        assert torch.allclose(ours, ref, atol=1e-6), (masked, (ours - ref).abs().max())
    assert not torch.allclose(ours, x, atol=1e-3)  # something happened


# --- the engine's step, through Lightning -------------------------------------------------------------------------

@pytest.mark.parametrize("method", SYNC_FREE)
def test_engine_steady_state_step_makes_no_host_reads(method):
    from dataclasses import replace

    torch.manual_seed(0)
    case = Case(method, 28, 32)
    overrides = ("width=0.25", "log_every_n_steps=4")
    if method in ("dino", "swav"):  # their epoch-based schedules and queues read a step count each step
        overrides += ("method_args.freeze_last_layer=0",) if method == "dino" else ("method_args.queue_size=64",
                                                                                      "method_args.queue_start_epoch=0")
    if method.startswith("direct"):  # the predictor's eigendecomposition every `freq` steps may read its status
        overrides += ("method_args.freq=3",)
    cfg = case_config(case, overrides)
    device = torch.device("cpu")
    data = synthetic_images(case, device)
    module = case_module(cfg, 14, device)
    module.views = replace(module.views, masked=True)  # the accelerator route (on the CPU the views may gather)
    counter = SyncCounter(where=True)
    run = engine_loop(module, data, case, device, steps=11, warmup=2, log_every=4, counter=counter)
    steady = {s: r for s, r, log in zip(run.steps, run.reads, run.logging) if not log}
    assert len(steady) >= 6
    # DirectPred/-Copy set the predictor after step s when (s - 1) % freq == 0 (luckmatters' niter % freq):
    # those steps read once, for eigh; every other non-logging step reads nothing
    resets = {s for s in steady if method.startswith("direct") and (s - 1) % 3 == 0}
    assert resets or not method.startswith("direct")
    expected = {s: {"aten._linalg_eigh": 1} if s in resets else {} for s in steady}
    assert steady == expected, (run.steps, run.reads, dict(counter.places))
    assert max(n for n, log in zip(run.syncs, run.logging) if log) > 0  # the counter does see the logging steps' reads


# --- the rewrites compute what they replaced ----------------------------------------------------------------------

def _lars_reference(params, lr, momentum, wd, eta, clip, exclude, state):
    """The per-tensor LARS loop the foreach version replaced (sslab before 2026-11-24)."""
    for p in params:
        dp = p.grad
        if not exclude and clip:
            w_norm, g_norm = torch.norm(p), torch.norm(dp)
            q = eta * w_norm / (g_norm + wd * w_norm + 1e-8)
            q = torch.where((w_norm > 0) & (g_norm > 0), (q / lr).clamp(max=1.0), torch.ones_like(q))
            dp = dp.add(p, alpha=wd).mul(q)
        elif not exclude:
            dp = dp.add(p, alpha=wd)
            w_norm, u_norm = torch.norm(p), torch.norm(dp)
            one = torch.ones_like(w_norm)
            q = torch.where(w_norm > 0, torch.where(u_norm > 0, eta * w_norm / u_norm, one), one)
            dp = dp.mul(q)
        mu = state.setdefault(id(p), torch.zeros_like(p))
        mu.mul_(momentum).add_(dp)
        p.data.add_(mu, alpha=-lr)


@pytest.mark.parametrize("clip,exclude", [(False, False), (True, False), (False, True)])
def test_foreach_lars_equals_the_per_tensor_loop(clip, exclude):
    from sslab.optim import LARS

    torch.manual_seed(0)
    ours = [torch.randn(8, 5, requires_grad=True), torch.randn(5, requires_grad=True), torch.zeros(3, 3, requires_grad=True)]
    ref = [p.detach().clone().requires_grad_(True) for p in ours]
    opt = LARS([{"params": ours, "lars_exclude": exclude}], lr=0.3, momentum=0.9, weight_decay=1e-3, eta=0.02, clip=clip)
    state: dict = {}
    for step in range(4):
        grads = [torch.randn_like(p) * (step + 1) for p in ours]
        grads[2] = torch.zeros_like(grads[2]) if step == 0 else grads[2]  # a zero norm takes the ratio-1 branch
        for p, r, g in zip(ours, ref, grads):
            p.grad, r.grad = g.clone(), g.clone()
        opt.step()
        _lars_reference(ref, 0.3, 0.9, 1e-3, 0.02, clip, exclude, state)
    for p, r in zip(ours, ref):
        assert torch.allclose(p, r, atol=1e-6, rtol=1e-6)
    with SyncCounter() as c:
        opt.step()
    assert c.syncs == 0


def test_foreach_ema_and_clipping_equal_the_loops():
    from sslab.methods.parts.target import ema_update
    from sslab.optim import clip_per_parameter

    torch.manual_seed(0)
    online, target = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
    expected = [pt.detach() * 0.9 + po.detach() * 0.1 for po, pt in zip(online.parameters(), target.parameters())]
    ema_update(online, target, 0.9)
    for e, pt in zip(expected, target.parameters()):
        assert torch.allclose(e, pt, atol=1e-7)
    grads = [torch.randn(4, 6) * 10, torch.randn(4) * 0.01]
    for p, g in zip(online.parameters(), grads):
        p.grad = g.clone()
    clip_per_parameter(online.parameters(), 3.0)
    for p, g in zip(online.parameters(), grads):  # DINO's rule, per tensor: g * min(1, 3 / (|g| + 1e-6))
        assert torch.allclose(p.grad, g * min(1.0, 3.0 / (g.norm().item() + 1e-6)), atol=1e-6)
    assert online.weight.grad.norm() == pytest.approx(3.0, rel=1e-5) and torch.equal(online.bias.grad, grads[1])


def test_fused_adamw_is_used_and_reads_nothing_on_the_host():
    from sslab.optim import build_optimizer

    model = torch.nn.Linear(4, 4)
    opt = build_optimizer("adamw", [{"params": list(model.parameters())}], lr=1e-3, weight_decay=0.1)
    assert opt.defaults["fused"] is True
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    with SyncCounter() as c:
        opt.step()
    assert c.syncs == 0


def test_host_mirror_follows_the_buffer_through_steps_and_checkpoint_loads():
    from sslab.methods.parts import Queue

    q = Queue(8, 2)
    for step in (1, 2, 3):
        q.stage(torch.randn(3, 2))
        q.after_step(step, 10)
    assert q.host_int("filled") == 8 and int(q.filled) == 8 and q.full  # 9 keys into 8 slots
    fresh = Queue(8, 2)
    fresh.stage(torch.randn(2, 2))
    fresh.after_step(1, 10)
    assert fresh.values().shape == (2, 2)
    state = q.state_dict()
    assert set(state) == {"keys", "ptr", "filled"}  # checkpoints keep the keys they always had
    fresh.load_state_dict(state | {"filled": torch.tensor(5)})
    assert fresh.host_int("filled") == 5 and fresh.values().shape == (5, 2)  # re-read after the load


def test_correlation_estimate_first_batch_and_moving_average_unchanged():
    from sslab.methods.parts import CorrelationEstimate

    est = CorrelationEstimate(3, rho=0.3)
    a, b = torch.randn(10, 3), torch.randn(10, 3)
    est.update(a)
    assert torch.allclose(est.corr, a.T @ a / 10)  # init="first_batch": the first batch replaces the zeros
    est.update(b)
    assert torch.allclose(est.corr, 0.3 * (a.T @ a / 10) + 0.7 * (b.T @ b / 10), atol=1e-6)
    zeros = CorrelationEstimate(3, rho=0.3, init="zeros")
    zeros.update(a)
    assert torch.allclose(zeros.corr, 0.7 * (a.T @ a / 10), atol=1e-6)


def test_nonfinite_loss_is_remembered_on_the_device_and_named_at_the_check():
    from sslab.engine.module import NonFiniteLossError

    cfg = case_config(Case("simclr", 28, 8), ("width=0.25",))
    module = case_module(cfg, 10, torch.device("cpu"))
    module.record_nonfinite(torch.tensor(1.5))
    module.raise_if_nonfinite()  # finite: nothing
    module.record_nonfinite(torch.tensor(float("nan")))
    module.record_nonfinite(torch.tensor(float("inf")))  # a later one does not replace the first
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 0; lower optim.lr"):
        module.raise_if_nonfinite()


def test_online_probe_masks_unlabelled_samples():
    cfg = case_config(Case("simclr", 28, 8), ("width=0.25",))
    module = case_module(cfg, 10, torch.device("cpu"))
    feats = torch.randn(6, module.method.feature_dim)
    labels = torch.tensor([3, -1, 1, -1, 0, 2])
    module.method = _FixedFeatures(feats)
    loss, out = module.step_loss([torch.zeros(6, 1)] * 2, labels)
    assert out.features is feats
    logits = module.probe(feats)
    keep = labels >= 0
    assert torch.allclose(loss - 1.0, F.cross_entropy(logits[keep], labels[keep]), atol=1e-6)
    correct = int((logits[keep].argmax(1) == labels[keep]).sum())
    assert module.probe_counts.tolist() == [correct, 4]
    none, _ = module.step_loss([torch.zeros(6, 1)] * 2, torch.full((6,), -1))
    assert none.item() == pytest.approx(1.0)  # no labels: the probe adds nothing (and no NaN)


class _FixedFeatures(torch.nn.Module):
    """A stand-in method (its schedule configured): loss 1, the given features, two identical embeddings."""

    schedule_configured = True

    def __init__(self, feats):
        super().__init__()
        self.feats = feats

    def forward(self, views):
        return StepOutput(torch.tensor(1.0), self.feats, [self.feats, self.feats])


@pytest.mark.gpu
@pytest.mark.parametrize("method", SYNC_FREE)
def test_gpu_steady_state_step_passes_cuda_sync_debug_mode(method):
    """On a GPU, torch's own check: any synchronising call in a steady-state step raises."""
    from sslab.bench.timing import PlainLoop

    device = torch.device("cuda")
    case = Case(method, 32, 64, "bf16-mixed")
    cfg = case_config(case, ("method_args.freq=1000",) if method.startswith("direct") else ())  # eigh at step 1 only
    module = case_module(cfg, 20, device)
    loop = PlainLoop(module, synthetic_images(case, device), case, device, 20)
    for i in range(3):  # warm-up: constants made, optimiser state created, the first predictor set
        loop.step(i)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(3, 8):
            loop.step(i)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert torch.isfinite(module.nonfinite_loss) and int(module.nonfinite_step) == -1


# --- `sslab bench` ----------------------------------------------------------------------------------------------------

def test_bench_command_writes_every_measurement(tmp_path):
    import json

    from sslab.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--methods", "simclr", "byol", "--sizes", "28", "--batch", "16", "--steps", "3",
                 "--warmup", "1", "--workers", "0", "--out", str(out)]) == 0  # diagnostics timed too (seconds at D=8192)
    result = json.loads(out.read_text())
    assert result["environment"]["device"] == "cpu" and result["environment"]["torch"] == torch.__version__
    rows = {r["method"]: r for r in result["cases"]}
    assert set(rows) == {"simclr", "byol"}
    for r in rows.values():
        assert r["size"] == 28 and r["batch"] == 16 and r["precision"] == "32-true"
        assert set(r["phases_ms"]) == {"views", "forward", "backward", "optimizer", "after_step"}
        assert r["floor_ratio"] == pytest.approx(r["step_ms"] / r["floor_ms"], rel=1e-2)
        assert r["images_per_s"] == pytest.approx(16 / r["engine_loop_ms"] * 1000, rel=1e-2)
        assert r["syncs_per_step"] == 0
    assert result["loader"][0]["workers"] == 0 and result["loader"][0]["images_per_s"] > 0
    assert [(d["n"], d["d"]) for d in result["diagnostics_ms"]] == [(512, 256), (512, 2048), (512, 8192)]


@pytest.mark.parametrize("args,named", [(["--methods", "simclrr"], "simclrr"), (["--sizes", "64"], "64"),
                                        (["--precision", "fp8"], "fp8"), (["--steps", "1"], "--steps")])
def test_bench_bad_input_is_one_line(args, named, capsys):
    from sslab.cli import main

    assert main(["bench", *args, "--workers", "--no-diagnostics"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "valid" in err[0] or "must be" in err[0]


# --- compile=true ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,overrides", [
    ("byol", ()), ("simclr", ()),
    ("dino", ("method_args.warmup_teacher_temp_epochs=3", "method_args.warmup_teacher_temp=0.02")),
    ("swav", ("method_args.queue_size=32", "method_args.queue_start_epoch=1", "method_args.freeze_prototypes_steps=0")),
])
def test_compiled_method_trains_like_eager_and_never_recompiles(method, overrides):
    """compile=true compiles the method in place: the same losses as eager, the same state_dict keys, and no
    recompilation as the schedules advance (DINO's teacher temperature warms up over epochs; SwAV's queue
    starts in epoch 1 and fills) once the graphs for the phases it passes through exist."""
    import torch._dynamo

    from sslab.bench.timing import PlainLoop

    case = Case(method, 28, 16)
    cfg = case_config(case, ("width=0.25", *overrides))
    device = torch.device("cpu")
    data = synthetic_images(case, device)
    losses = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        module = case_module(cfg, 4, device)  # 4 steps per epoch
        keys = set(module.state_dict())
        if compiled:
            torch._dynamo.reset()
            module.method.compile(backend="aot_eager")
            assert set(module.state_dict()) == keys
        loop = PlainLoop(module, data, case, device, 12)
        seen = []
        with torch._dynamo.config.patch(error_on_recompile=False):
            for i in range(8):
                loop.step(i)
                seen.append(float(loop.last_loss))
        if compiled:  # steps 8-11: past every phase change above, nothing may recompile
            with torch._dynamo.config.patch(error_on_recompile=True):
                for i in range(8, 12):
                    loop.step(i)
        losses[compiled] = seen
    assert losses[True] == pytest.approx(losses[False], rel=1e-4, abs=1e-5)
