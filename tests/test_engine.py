"""Engine: loaders, config resolution, atomic checkpoints, resume equality, summary.json."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sslab.config import ConfigError, parse_overrides, resolve
from sslab.data import TensorBatches, TensorImages
from sslab.io import CheckpointError, atomic_save, safe_load

TINY = [
    "dataset=digits", "backbone=convnet", "width=0.25", "batch_size=64", "epochs=3", "deterministic=true",
    "eval.baselines=false", "eval.linear=false", "eval.knn_every=0", "optim.warmup_epochs=1",
    "proj_hidden_dim=32", "proj_dim=16", "pred_hidden_dim=32", "momentum=0.9",
]


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-m", "sslab", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_tensor_batches_epoch_order_and_ddp_shards():
    data = TensorImages(torch.zeros(100, 1, 2, 2, dtype=torch.uint8), torch.arange(100), [])
    loader = TensorBatches(data, batch_size=10, seed=3)
    assert len(loader) == 10
    e0 = torch.cat([i for _, _, i in loader])
    assert sorted(e0.tolist()) == list(range(100))
    assert torch.equal(e0, torch.cat([i for _, _, i in loader]))  # same epoch, same order
    loader.sampler.set_epoch(1)
    assert not torch.equal(e0, torch.cat([i for _, _, i in loader]))
    r0 = TensorBatches(data, 5, seed=3, rank=0, world=2)
    r1 = TensorBatches(data, 5, seed=3, rank=1, world=2)
    single = TensorBatches(data, 10, seed=3)
    for (_, _, a), (_, _, b), (_, _, g) in zip(r0, r1, single, strict=True):
        assert sorted(torch.cat([a, b]).tolist()) == sorted(g.tolist())  # ranks split the global batch


def test_config_layers_and_routing():
    cfg = resolve(None, ["method=simclr", "temperature=0.3", "optim.lr=0.5", "epochs=2"])
    assert cfg.method == "simclr" and cfg.method_args["temperature"] == 0.3
    assert cfg.optim.lr == 0.5 and cfg.epochs == 2
    assert cfg.crop_scale == [0.6, 1.0]  # from the auto-selected recipe simclr_mnist5k
    assert resolve(None, []).method == "byol"
    with pytest.raises(ConfigError, match="unknown config key 'epochz'"):
        resolve(None, ["epochz=3"])
    with pytest.raises(ConfigError, match="malformed override"):
        parse_overrides(["epochs"])
    with pytest.raises(ConfigError, match="valid choices: .*byol.*simclr.*simsiam"):
        resolve(None, ["method=moco9"])
    with pytest.raises(ConfigError, match="epochs"):
        resolve(None, ["epochs=many"])
    with pytest.raises(ConfigError, match="unknown recipe"):
        resolve("nope", [])


def test_yaml_config_file_and_bad_yaml(tmp_path):
    good = tmp_path / "exp.yaml"
    good.write_text("method: simsiam\nepochs: 3\noptim: {lr: 0.01}\npred_hidden_dim: 64\n")
    cfg = resolve(str(good), ["epochs=4"])
    assert (cfg.method, cfg.epochs, cfg.optim.lr, cfg.method_args["pred_hidden_dim"]) == ("simsiam", 4, 0.01, 64)
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(str(bad), [])


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "c.ckpt"
    atomic_save({"state_dict": {"w": torch.ones(2)}}, p)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_save({"state_dict": Boom()}, p)
    assert torch.equal(safe_load(p)["state_dict"]["w"], torch.ones(2))
    assert [f.name for f in tmp_path.iterdir()] == ["c.ckpt"]  # no temporary left behind


def test_safe_load_rejects_corrupt_and_pickled_code(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        safe_load(bad)
    evil = tmp_path / "evil.ckpt"

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"state_dict": Evil()}, evil)
    with pytest.raises(CheckpointError):
        safe_load(evil)
    with pytest.raises(CheckpointError, match="not found"):
        safe_load(tmp_path / "missing.ckpt")


@pytest.mark.slow  # 35 s; tests/test_faults.py's step kills cover the same path in the default run
def test_killed_run_resumes_to_identical_weights(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    r = run_cli("train", *TINY, "eval.knn_every=1", "--out", str(full))
    assert r.returncode == 0, r.stderr[-2000:]
    # 22 steps per epoch: die hard in the middle of epoch 2, after the epoch-1 checkpoint
    fault_run = str(Path(__file__).with_name("fault_run.py"))  # sslab's command line with a test-side fault
    r = subprocess.run([sys.executable, fault_run, "kill_after_step=30", "train", *TINY, "eval.knn_every=1", "--out",
                        str(killed)], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, timeout=600)
    assert r.returncode == 137, r.stderr[-2000:]
    assert safe_load(killed / "checkpoints" / "last.ckpt")["global_step"] == 22
    assert not (killed / "summary.json").exists()
    r = run_cli("train", "--out", str(killed), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    a = safe_load(full / "checkpoints" / "last.ckpt")
    b = safe_load(killed / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 66
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (full, killed))
    assert sa["knn_top1"] == sb["knn_top1"] and sb["resumed"] is True
    # the best kNN over epochs survives the kill: epoch 1's is in the checkpoint the resumed run started from
    assert sa["knn_top1_best"] == sb["knn_top1_best"] >= sa["knn_top1"]
    states = safe_load(killed / "checkpoints" / "last.ckpt")["callbacks"].values()
    assert [round(s["best"], 4) for s in states if "best" in s] == [sb["knn_top1_best"]]
    for key in ("method", "dataset", "backbone", "epochs", "steps", "wall_seconds", "images_per_second",
                "knn_top1", "linear_top1", "final_loss"):
        assert key in sa
    assert (full / "config.yaml").is_file() and (full / "logs" / "metrics.csv").is_file()
    assert any((full / "logs" / "tb").iterdir())
    # sslab eval reads the checkpoint back and reproduces the summary's kNN accuracy
    r = run_cli("eval", str(full / "checkpoints" / "last.ckpt"), "--knn")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["knn_top1"] == sa["knn_top1"]
    # and transfers to another dataset of the same channels (28-px MNIST resized to the 8-px training size)
    r = run_cli("eval", str(full), "--dataset", "mnist5k", "--knn", "--linear")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["dataset"] == "mnist5k" and 0.1 < res["knn_top1"] <= 1 and 0.1 < res["linear_top1"] <= 1


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    from sslab.cli import main

    monkeypatch.chdir(tmp_path)
    cases = [
        (["train", "method=nope"], "valid choices"),
        (["train", "byol_mnist5k", "epochs"], "malformed override"),
        (["train", "dataset=cifar10", f"data_root={tmp_path}"], "cifar-10-python.tar.gz"),
        (["train", "--resume", "--out", str(tmp_path / "none")], "not found"),
        (["eval", str(tmp_path / "missing.ckpt")], "not found"),
        (["train", "recipe_that_does_not_exist"], "unknown recipe"),
        (["train", "backbone=resnet19", "epochs=1"], "valid choices"),
    ]
    for args, needle in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (args, err)
    assert not (tmp_path / "runs").exists()  # nothing half-written for bad input
    corrupt = tmp_path / "run" / "checkpoints"
    corrupt.mkdir(parents=True)
    (corrupt / "last.ckpt").write_bytes(b"\x00" * 64)
    r = run_cli("eval", str(corrupt / "last.ckpt"))  # the real process exit code
    assert r.returncode == 2 and "corrupt" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_nan_loss_is_a_one_line_error(tmp_path):
    r = run_cli("train", *TINY, "epochs=1", "optim.name=sgd", "optim.lr=1e30", "--out", str(tmp_path / "nan"))
    assert r.returncode == 2, r.stderr[-1000:]
    assert "loss is" in r.stderr and "optim.lr" in r.stderr


def test_list_shows_everything():
    r = run_cli("list")
    assert r.returncode == 0
    from sslab.methods import METHODS

    listed = {line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ")}
    assert set(METHODS) <= listed and len(METHODS) >= 20
    for name in ("mnist5k", "digits", "cifar10", "cifar100", "stl10", "imagefolder", "resnet18", "resnet50", "convnet",
                 "vit_tiny", "vit_small", "byol_mnist5k", "dino_mnist5k"):
        assert name in listed


def test_two_process_cpu_ddp_training_runs(tmp_path):
    """Lightning DDP on two CPU processes (gloo): each rank takes half of every global batch."""
    out = tmp_path / "ddp"
    r = run_cli("train", *TINY, "epochs=1", "accelerator=cpu", "devices=2", "strategy=ddp", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["devices"] == 2 and summary["batch_size"] == 128
    assert summary["steps"] == 1437 // 128  # digits train split / global batch
    assert safe_load(out / "checkpoints" / "last.ckpt")["global_step"] == summary["steps"]
    # diagnostics gather across ranks; rank 0 alone writes the trace, ending with the final step's record
    trace = [json.loads(line) for line in (out / "logs" / "diagnostics.jsonl").read_text().splitlines()]
    assert trace[-1]["step"] == summary["steps"] and len(trace[-1]["spectrum"]) == summary["embedding_dim"]
    assert trace[-1]["center_norm"] == pytest.approx(summary["diagnostics"]["center_norm"])


def test_dino_with_a_vit_multicrop_clipping_and_weight_decay_schedule_trains(tmp_path):
    """The engine hooks DINO needs (per-parameter clipping, cosine weight decay, last-layer freezing,
    the epoch schedule) and a ViT backbone on 8-px digits with 4-px patches and 4-px local crops."""
    out = tmp_path / "dino"
    args = ["dataset=digits", "method=dino", "backbone=vit_tiny", "backbone_args={patch_size: 4}", "batch_size=64",
            "epochs=1", "eval.baselines=false", "eval.linear=false", "eval.knn_every=0", "views=dino", "local_crops=2",
            "image_size=8", "out_dim=64", "proj_hidden_dim=32", "bottleneck_dim=16", "optim.clip_grad=3.0",
            "optim.weight_decay=0.04", "optim.weight_decay_end=0.4", "warmup_teacher_temp_epochs=2"]
    r = run_cli("train", *args, "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backbone"] == "vit_tiny" and summary["embedding_dim"] == 16
    assert summary["final_loss"] is not None and summary["knn_top1"] > 0.1
    header = (out / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "method/teacher_entropy" in header and "method/kl" in header  # the method's own scalars, logged by the engine


def test_diagnostics_in_summary_and_stop_on_collapse(tmp_path):
    """Healthy BYOL: verdict healthy, center norm well below 1. SimSiam without stop-gradient (and without its
    output BN, so the collapse is complete): verdict complete, and stop_on_collapse ends the run early."""
    common = [a for a in TINY if not a.startswith(("epochs", "momentum"))] + ["diagnostics.every=5"]
    ok = tmp_path / "ok"
    r = run_cli("train", *common, "epochs=3", "momentum=0.9", "--out", str(ok))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((ok / "summary.json").read_text())["diagnostics"]
    assert d["verdict"] == "healthy" and d["center_norm"] < 0.9 and d["effective_rank"] > 2
    assert d["aug_mean_sq"] - d["center_sq"] == pytest.approx(d["aug_mean_spread"])
    header = (ok / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "diag_probe/center_norm" in header and "diag_batch/effective_rank" in header
    bad = tmp_path / "bad"
    r = run_cli("train", *common, "method=simsiam", "stop_gradient=false", "proj_last_bn=false", "epochs=20",
                "optim.lr=0.01", "diagnostics.stop_on_collapse=true", "--out", str(bad))
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((bad / "summary.json").read_text())
    assert s["diagnostics"]["verdict"] == "complete" and s["diagnostics"]["stopped_on_collapse_at"] is not None
    assert s["steps"] < 20 * (1437 // 64) and "completely collapsed" in r.stderr


def test_epoch_checkpoint_survives_an_evaluation_error_and_overwrite_replaces_a_run(tmp_path, monkeypatch, capsys):
    """An error in the kNN monitor at epoch 2 comes after epoch 2's checkpoint is written (it used to be
    written last, and was lost); the checkpoint is as readable as the run's other files (mkstemp's 0600
    before); --overwrite replaces a finished run that a plain rerun refuses."""
    import stat

    import sslab.engine.callbacks as callbacks
    from sslab.cli import main

    real, calls = callbacks.knn_accuracy, []

    def failing(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("the kNN monitor failed")
        return real(*a, **kw)

    monkeypatch.setattr(callbacks, "knn_accuracy", failing)
    out = tmp_path / "run"
    args = ["train", *TINY, "epochs=2", "eval.knn_every=1", "progress=false", "--out", str(out)]
    assert main(args) == 2
    assert "the kNN monitor failed" in capsys.readouterr().err
    ckpt = out / "checkpoints" / "last.ckpt"
    assert safe_load(ckpt)["global_step"] == 44 and safe_load(ckpt)["epoch"] == 1  # epoch 2's, written first
    mode = stat.S_IMODE(ckpt.stat().st_mode)
    assert mode == stat.S_IMODE((out / "config.yaml").stat().st_mode) and mode & stat.S_IRGRP
    monkeypatch.setattr(callbacks, "knn_accuracy", real)
    assert main(args) == 2 and "already holds a run" in capsys.readouterr().err
    assert main([*args, "epochs=1", "--overwrite"]) == 0
    assert safe_load(ckpt)["global_step"] == 22 and not (out / "checkpoints" / ".last.ckpt.tmp").exists()


def test_a_stop_crosses_process_pools_and_a_held_lock_is_seen(tmp_path):
    """A worker's RunStopped reaches the claims study's pool intact (pickled by its fields), and in_use tells a
    folder whose lock another descriptor holds -- what the claims runner checks before moving a folder aside."""
    import fcntl
    import pickle

    from sslab.engine.runfolder import claim, in_use
    from sslab.io import RunStopped

    e = pickle.loads(pickle.dumps(RunStopped(15, 7, "ckpt")))
    assert (e.signum, e.step, e.checkpoint, e.code) == (15, 7, "ckpt", 143) and "after step 7" in str(e)
    assert not isinstance(e, Exception)  # `except Exception` in a runner does not swallow a stop
    assert not in_use(tmp_path / "none")
    folder = claim(tmp_path / "run", resume=False)
    try:
        assert in_use(tmp_path / "run")
    finally:
        folder.release()
    assert not in_use(tmp_path / "run")
    fd = os.open(tmp_path / "run" / ".sslab.lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        assert in_use(tmp_path / "run")
    finally:
        os.close(fd)


@pytest.mark.parametrize("method,options", [
    ("dino", ("out_dim=256", "proj_hidden_dim=64", "bottleneck_dim=32", "freeze_last_layer=1")),  # freeze, epoch schedules
    ("directpred", ("proj_hidden_dim=64", "proj_dim=32", "freq=2")),  # the predictor reset every other step
    ("byol", ("proj_hidden_dim=64", "proj_dim=32", "pred_hidden_dim=64")),  # the EMA target
])
def test_sslab_step_on_a_plain_optimiser_gives_the_engines_weights(method, options):
    """Two epochs of two steps through the engine (Lightning's loop, SSLModule's hooks) and through ``sslab.step``
    with the same optimiser and LR schedule as plain torch objects, on the same views: bit-identical weights and
    buffers. The engine calls the protocol's pieces from its hooks; this is where the two are shown to be one."""
    import sslab
    from sslab.bench.case import Case, case_config, synthetic_images
    from sslab.bench.timing import Cycle
    from sslab.build import method_from_config, pipeline_from_config
    from sslab.data.loaders import seeded_generator
    from sslab.engine.steps import fit_steps
    from sslab.engine.train import engine_module

    case, device, steps_per_epoch, epochs = Case(method, 28, 16), torch.device("cpu"), 2, 2
    cfg = case_config(case, ("width=0.25", "eval.online_probe=false", *options))
    data = synthetic_images(case, device)

    def module():
        torch.manual_seed(0)
        return engine_module(cfg, method_from_config(cfg), pipeline_from_config(cfg), 10, steps_per_epoch, epochs, 16)

    engine = module()
    fit_steps(engine, Cycle(data, case.batch, steps_per_epoch * epochs), device, "32-true", steps_per_epoch * epochs, 0,
              log_every=1000)

    plain = module()
    conf = plain.configure_optimizers()  # the same torch optimiser and LR schedule, driven by hand
    optimizer, schedule = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    batches = Cycle(data, case.batch, steps_per_epoch * epochs)
    for step in range(steps_per_epoch * epochs):
        views = plain.views(batches[step][0], seeded_generator(device, cfg.seed, step, 0))  # the engine's views
        sslab.step(plain.method, optimizer, views, step)
        schedule.step()

    a, b = engine.method.state_dict(), plain.method.state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{method}: {len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"
