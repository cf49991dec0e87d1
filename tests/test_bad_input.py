"""Every bad input is one line naming the bad value (and the valid choices or range), exit code 2, and no change on disk.

Each case builds what it needs under ``tmp_path`` (the current folder, so a default ``runs/`` would
appear there too), snapshots the tree, runs the CLI in-process and compares. The cases are those of
issue 14 and those the other test files check one by one (docs/reliability.md lists them all).
"""

import fcntl
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ondisk import write_cifar, write_imagefolder

from sslab.cli import main
from sslab.config import resolve, to_dict
from sslab.data.datasets import CIFAR10

RUN = ["dataset=digits", "epochs=1", "eval.linear=false", "eval.baselines=false", "diagnostics.every=0", "progress=false"]


def _saved_run(folder: Path, ckpt_state: dict | None = None, **overrides) -> Path:
    """A run folder with the config.yaml a run of ``RUN`` saves, and a checkpoint holding ``ckpt_state``."""
    cfg = resolve(None, RUN + [f"{k}={v}" for k, v in overrides.items()])
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    torch.save({"state_dict": ckpt_state or {}, "epoch": 1, "global_step": 5}, folder / "checkpoints" / "last.ckpt")
    return folder


def _method_state(**overrides) -> dict:
    from sslab.build import method_from_config

    cfg = resolve(None, RUN + [f"{k}={v}" for k, v in overrides.items()])
    return {f"method.{k}": v for k, v in method_from_config(cfg).state_dict().items()}


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _tar(path: Path, members: dict[str, bytes], truncate: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    path.write_bytes(raw[: len(raw) // 2] if truncate else raw)
    return path


# each case: (id, setup(tmp) -> argv, what the one line must contain)
CASES = [
    ("unknown method", lambda t: ["train", "method=nope"], ["'nope'", "valid choices"]),
    ("unknown dataset", lambda t: ["train", "dataset=nope"], ["'nope'", "valid choices"]),
    ("unknown key", lambda t: ["train", "epoch=3"], ["'epoch'", "valid choices"]),
    ("malformed override", lambda t: ["train", "byol_mnist5k", "epochs"], ["malformed override"]),
    ("unknown recipe", lambda t: ["train", "recipe_that_does_not_exist"], ["unknown recipe", "valid choices"]),
    ("missing recipe file", lambda t: ["train", str(t / "nothere.yaml")], ["recipe file", "nothere.yaml", "not found"]),
    ("unknown backbone", lambda t: ["train", "backbone=resnet19", *RUN], ["resnet19", "valid choices"]),
    ("typed value", lambda t: ["train", "epochs=abc"], ["epochs", "abc"]),
    ("epochs -1", lambda t: ["train", "epochs=-1"], ["'epochs': -1", ">= 1"]),
    ("epochs 0", lambda t: ["train", "epochs=0"], ["'epochs': 0", ">= 1"]),
    ("batch 0", lambda t: ["train", "batch_size=0"], ["'batch_size': 0", ">= 1"]),
    ("batch < 0", lambda t: ["train", "batch_size=-4"], ["'batch_size': -4", ">= 1"]),
    ("devices 0", lambda t: ["train", "devices=0"], ["'devices': 0", ">= 1"]),
    ("width 0", lambda t: ["train", "width=0"], ["'width': 0.0", "> 0"]),
    ("crop scale", lambda t: ["train", "crop_scale=[2, 1]"], ["'crop_scale'", "0 < low <= high <= 1"]),
    ("image size 0", lambda t: ["train", "image_size=0"], ["'image_size': 0", ">= 8"]),
    ("probe size", lambda t: ["train", "diagnostics.probe_size=0"], ["'diagnostics.probe_size': 0", ">= 2"]),
    ("checkpoint every 0", lambda t: ["train", "checkpoint_every=0"], ["'checkpoint_every': 0", ">= 1"]),
    ("unknown section key", lambda t: ["train", "optim.lrr=0.1"], ["'optim.lrr'", "valid choices", "optim.lr,"]),
    ("retired key", lambda t: ["train", "kill_at_step=3"], ["'kill_at_step'", "valid choices"]),
    ("print-config checks", lambda t: ["train", "epochs=0", "--print-config"], ["'epochs': 0", ">= 1"]),
    ("optimizer", lambda t: ["train", "optim.name=foo"], ["'optim.name': 'foo'", "adamw"]),
    ("lr", lambda t: ["train", "optim.lr=-1"], ["'optim.lr': -1.0", "> 0"]),
    ("betas", lambda t: ["train", "optim.betas=[0.9, 1.5]"], ["'optim.betas'", "0 to 1"]),
    ("precision", lambda t: ["train", "precision=fp8"], ["'precision': 'fp8'", "bf16-mixed"]),
    ("accelerator", lambda t: ["train", "accelerator=tpu"], ["'accelerator': 'tpu'", "cpu, gpu"]),
    ("strategy", lambda t: ["train", "strategy=foo", *RUN], ["strategy='foo'"]),
    ("decode", lambda t: ["train", "decode=gpu"], ["'decode': 'gpu'", "workers, device"]),
    ("method option type", lambda t: ["train", "method=simclr", "temperature=abc"], ["'temperature': 'abc'", "a number"]),
    ("method option bool", lambda t: ["train", "method=byol", "symmetric=3"], ["'symmetric': 3", "true or false"]),
    # an option of another method (of another loss of the same family) does nothing here: refused, not ignored
    ("option of another loss", lambda t: ["train", "method=barlow_twins", "temperature=0.2"], ["'temperature'", "lambd"]),
    ("vicreg lambd", lambda t: ["train", "method=vicreg", "lambd=0.1"], ["'lambd'", "cov_coeff"]),
    ("simclr mu", lambda t: ["train", "method=simclr", "mu=2"], ["'mu'", "temperature"]),
    ("spectral temperature", lambda t: ["train", "method=spectral_contrastive", "temperature=0.3"], ["'temperature'", "mu"]),
    ("simclr loss switch", lambda t: ["train", "method=simclr", "loss=spectral"],
     ["'loss'", "method=spectral_contrastive", "negatives"]),
    ("vicreg_exp centering", lambda t: ["train", "method=vicreg_exp", "centering=embedding"], ["'centering'", "temperature"]),
    # an option whose switch is off does nothing: refused, naming the switch
    ("moco_v2 predictor width", lambda t: ["train", "method=moco_v2", "pred_hidden_dim=1024"],
     ["'pred_hidden_dim'", "predictor='none'", "predictor=mlp"]),
    ("directpred norm", lambda t: ["train", "method=directpred", "norm=fro"], ["'norm'", "direct='pred'", "direct=copy"]),
    ("directcopy power", lambda t: ["train", "method=directcopy", "power=1.0"], ["'power'", "direct='copy'", "direct=pred"]),
    ("dino warm-up", lambda t: ["train", "method=dino", "warmup_teacher_temp=0.02", "warmup_teacher_temp_epochs=0"],
     ["'warmup_teacher_temp'", "warmup_teacher_temp_epochs > 0"]),
    ("swav queue start", lambda t: ["train", "method=swav", "queue_start_epoch=3"], ["'queue_start_epoch'", "queue_size > 0"]),
    ("byol linear predictor width", lambda t: ["train", "method=byol", "predictor=linear", "pred_hidden_dim=64"],
     ["'pred_hidden_dim'", "predictor=mlp"]),
    ("backbone_args", lambda t: ["train", "backbone_args={foo: 1}", *RUN], ["backbone_args", "'foo'"]),
    ("method_args list", lambda t: [
        "train", _yaml(t / "r.yaml", {"method": "byol", "method_args": [1, 2]})], ["method_args"]),
    ("gpu without a GPU", lambda t: ["train", "accelerator=gpu", *RUN], ["accelerator=gpu", "0 CUDA GPU"]),
    ("out is a file", lambda t: ["train", *RUN, "--out", str(_file(t / "f"))], ["is a file"]),
    ("out not writable", lambda t: ["train", *RUN, "--out", "/proc/sslab-run"], ["/proc"]),
    ("missing cifar", lambda t: ["train", "dataset=cifar10", f"data_root={t}"], ["cifar-10-python.tar.gz"]),
    ("cifar labels", lambda t: ["train", "dataset=cifar10", f"data_root={_cifar(t, labels=3)}", "verify_md5=false"],
     ["data_batch_1", "8 images but 3 labels"]),
    ("tar escapes", lambda t: ["train", "dataset=cifar10", "verify_md5=false",
                               f"data_root={_archive(t, {'../evil.txt': b'x'})}"], ["unsafe archive member '../evil.txt'"]),
    ("tar truncated", lambda t: ["train", "dataset=cifar10", "verify_md5=false",
                                 f"data_root={_archive(t, {'cifar-10-batches-py/x': os.urandom(1 << 16)}, True)}"],
     ["cannot extract", "truncated"]),
    ("resume without checkpoint", lambda t: ["train", "--resume", "--out", str(t / "none")], ["not found"]),
    ("resume without out", lambda t: ["train", "--resume"], ["--resume needs --out"]),
    ("resume corrupt", lambda t: ["train", "--resume", "--out", str(_corrupt_run(t))], ["corrupt"]),
    ("resume changed method", lambda t: ["train", "--resume", "method=simclr", "--out", str(_saved_run(t / "run"))],
     ["cannot resume with changed", "method: 'byol' -> 'simclr'"]),
    ("resume changed batch", lambda t: ["train", "--resume", "batch_size=32", "--out", str(_saved_run(t / "run"))],
     ["cannot resume with changed", "batch_size"]),
    ("resume changed optimiser", lambda t: ["train", "--resume", "optim.lr=0.5", "--out", str(_saved_run(t / "run"))],
     ["cannot resume with changed", "optim.lr"]),
    ("resume changed probe", lambda t: ["train", "--resume", "eval.online_probe=false", "--out",
                                        str(_saved_run(t / "run"))], ["cannot resume with changed", "eval.online_probe"]),
    ("resume fewer epochs", lambda t: ["train", "--resume", "epochs=1", "--out", str(_saved_run(t / "run", epochs=3))],
     ["cannot resume with changed", "epochs: 3 -> 1"]),
    ("resume extra tensor", lambda t: ["train", "--resume", "--out",
                                       str(_saved_run(t / "run", {**_method_state(), "method.extra": torch.zeros(1)}))],
     ["does not fit", "'method.extra'"]),
    ("overwrite foreign folder", lambda t: ["train", *RUN, "--overwrite", "--out", str(_foreign(t / "mine"))],
     ["not written by sslab", "choose another --out"]),
    ("image folder below a batch", lambda t: ["train", "dataset=imagefolder", f"data_root={_images(t, 2)}",
                                              "batch_size=8", "backbone=convnet", "image_size=16", *RUN[1:]],
     ["batch_size 8", "exceeds the 4 images"]),
    ("resume other shape", lambda t: ["train", "--resume", "--out", str(_saved_run(t / "run", _method_state(width=0.5)))],
     ["does not fit", "in the checkpoint"]),
    ("folder in use", lambda t: ["train", *RUN, "--out", str(_locked(t / "busy"))], ["in use by another sslab process"]),
    ("folder holds a run", lambda t: ["train", *RUN, "--out", str(_saved_run(t / "run"))],
     ["already holds a run", "--resume", "--overwrite"]),
    ("eval missing", lambda t: ["eval", str(t / "missing.ckpt")], ["not found"]),
    ("eval corrupt", lambda t: ["eval", str(_corrupt_run(t) / "checkpoints" / "last.ckpt")], ["corrupt"]),
    ("eval pickled code", lambda t: ["eval", str(_evil_run(t))], ["does not execute code"]),
    ("eval other shape", lambda t: ["eval", str(_saved_run(t / "run", _method_state(width=0.5)))],
     ["does not fit", "in the checkpoint"]),
    ("analyze other shape", lambda t: ["analyze", str(_saved_run(t / "run", _method_state(width=0.5))), "--out",
                                       str(t / "report")], ["does not fit"]),
    ("theory unknown", lambda t: ["theory", "nope"], ["'nope'"]),
    ("theory option", lambda t: ["theory", "duality", "q=1"], ["'q'", "valid"]),
    ("theory m 0", lambda t: ["theory", "duality", "m=0", "--out", str(t / "th")], ["m=0", ">= 1"]),
    ("theory n 0", lambda t: ["theory", "tian-linear", "n=0", "--out", str(t / "th")], ["n=0", ">= 1"]),
    ("theory negative", lambda t: ["theory", "tian-linear", "lr=-1", "--out", str(t / "th")], ["lr=-1", "> 0"]),
    ("theory pickle", lambda t: ["theory", "duality", f"embeddings={_pickled(t)}", "--out", str(t / "th")],
     ["not a plain array file", "does not execute code"]),
    ("reproduce unknown", lambda t: ["reproduce", "nope", "--dry-run"], ["'nope'"]),
    ("export missing", lambda t: ["export", str(t / "none"), "--out", str(t / "x.pt")], ["not found"]),
]


def _foreign(folder: Path) -> Path:
    """A folder of someone else's files that happen to be called config.yaml and logs/."""
    (folder / "logs").mkdir(parents=True)
    (folder / "config.yaml").write_text("mine: true\n")
    return folder


def _images(root: Path, per_class: int) -> Path:
    write_imagefolder(root / "imgs", ["a", "b"], per_class=per_class, size=16)
    return root / "imgs"


def _yaml(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _file(path: Path) -> Path:
    path.write_text("not a folder")
    return path


def _cifar(root: Path, labels: int) -> Path:
    write_cifar(root, CIFAR10, n=8)
    batch = root / CIFAR10.folder / "data_batch_1"
    with open(batch, "rb") as f:
        content = pickle.load(f)
    content["labels"] = content["labels"][:labels]
    with open(batch, "wb") as f:
        pickle.dump(content, f)
    return root


def _archive(root: Path, members: dict[str, bytes], truncate: bool = False) -> Path:
    _tar(root / CIFAR10.archive, members, truncate)
    return root


def _corrupt_run(root: Path) -> Path:
    folder = _saved_run(root / "corrupt")
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"\x00" * 64)
    return folder


def _evil_run(root: Path) -> Path:
    folder = _saved_run(root / "evil")
    torch.save({"state_dict": {}, "x": Evil()}, folder / "checkpoints" / "last.ckpt")
    return folder / "checkpoints" / "last.ckpt"


def _pickled(root: Path) -> Path:
    torch.save({"z": Evil()}, root / "emb.pt")
    return root / "emb.pt"


_held = []


def _locked(folder: Path) -> Path:
    """A folder another process holds: the lock file flocked on a descriptor the CLI does not know."""
    folder.mkdir()
    fd = os.open(folder / ".sslab.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"424242\n")
    _held.append(fd)
    return folder


def _tree(root: Path) -> dict[str, tuple]:
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("setup, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(setup, needles, tmp_path, monkeypatch, capsys):
    if "accelerator=gpu" in needles and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.chdir(tmp_path)
    argv = setup(tmp_path)
    before = _tree(tmp_path)
    try:
        code = main(argv)
    finally:
        while _held:
            os.close(_held.pop())
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith("sslab: error: "), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert _tree(tmp_path) == before  # nothing written, nothing removed, nothing touched
    assert not Path("/proc/sslab-run").exists()


def test_all_issue_cases_are_in_the_table():
    """The table keeps the cases docs/reliability.md lists (a removed row fails here)."""
    doc = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text()
    for case_id, _, _ in CASES:
        assert f"| {case_id} |" in doc, case_id


def test_a_worker_error_names_the_file(tmp_path, capsys):
    """An image that fails to decode in a DataLoader worker: the one line names the file, not the worker."""
    write_imagefolder(tmp_path / "data", ["a", "b"], per_class=4, size=24)
    bad = tmp_path / "data" / "train" / "a" / "2.JPEG"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    code = main(["train", "dataset=imagefolder", f"data_root={tmp_path / 'data'}", "image_size=16", "batch_size=4",
                 "epochs=1", "num_workers=1", "eval.linear=false", "eval.baselines=false", "diagnostics.probe_size=2",
                 "progress=false", "backbone=convnet", "decode=workers", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("sslab: error: cannot decode image") and str(bad) in err[-1], err
    assert np.all([len(line) < 400 for line in err])
