"""Fault injection: runs killed at seeded random moments resume to the uninterrupted run's exact state.

One deterministic training process (digits, 2 epochs of 22 steps) is run once uninterrupted; then
SIGKILLed at 8 moments -- 4 seeded random steps (``kill_after_step``), 2 seeded random times after it
started writing its folder, and twice inside a checkpoint write (``kill_in_save``: after the bytes are
in the temporary file, before it replaces the old checkpoint) -- and sent SIGTERM at 2
seeded random times and SIGINT once. After each, every checkpoint on disk must load; the run is
resumed (or, killed before its first checkpoint, started again with ``--overwrite``) and its final
weights and step must equal the uninterrupted run's bit for bit. A full disk during a checkpoint
write (a patched writer) leaves the previous checkpoint intact with a one-line error.

The faults are installed by the test-side runner ``tests/fault_run.py`` (``python tests/fault_run.py
FAULT=N train ...``), which runs ``sslab.cli.main`` with them; the product has no fault injection.
"""

import errno
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sslab.io import safe_load

pytestmark = pytest.mark.faults

RUN = ["dataset=digits", "backbone=convnet", "width=0.25", "batch_size=64", "epochs=2", "deterministic=true",
       "eval.baselines=false", "eval.linear=false", "eval.knn_every=1", "optim.warmup_epochs=1", "proj_hidden_dim=32",
       "proj_dim=16", "pred_hidden_dim=32", "momentum=0.9", "progress=false", "diagnostics.every=10"]
STEPS = 44
RNG = random.Random(14)
KILL_STEPS = sorted(RNG.sample(range(2, STEPS), 4))
KILL_DELAYS = [RNG.uniform(0.0, 2.0) for _ in range(2)]
TERM_DELAYS = [RNG.uniform(0.2, 1.5) for _ in range(2)]


ENV = {**os.environ, "PYTHONHASHSEED": "0"}
FAULT_RUN = str(Path(__file__).with_name("fault_run.py"))  # sslab's command line with test-side faults


def _start(out: Path, *extra: str, faults: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, FAULT_RUN, *faults, "train", *RUN, *extra, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _train(out: Path, *args: str, faults: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``sslab train *args --out out`` to its end, with ``faults`` (``fault_run.py``'s ``FAULT=N``) installed."""
    return subprocess.run([sys.executable, FAULT_RUN, *faults, "train", *args, "--out", str(out)], capture_output=True,
                          text=True, env=ENV, timeout=600)


def _wait_for_folder(p: subprocess.Popen, out: Path) -> None:
    t0 = time.time()
    while not (out / "config.yaml").is_file() and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.02)


def _checkpoints_load(out: Path) -> None:
    for ckpt in (out / "checkpoints").glob("*.ckpt") if (out / "checkpoints").is_dir() else []:
        safe_load(ckpt)  # never torn: an atomic write or none


def _finish(out: Path) -> dict:
    """Resume ``out`` (or start it again when no checkpoint survived) and return its final checkpoint."""
    has_ckpt = (out / "checkpoints" / "last.ckpt").is_file()
    args = ["--resume"] if has_ckpt else ["--overwrite"]
    r = _train(out, *(RUN if not has_ckpt else []), *args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list((out / "checkpoints").glob(".*.tmp"))  # the interrupted write's temporary file is gone
    return safe_load(out / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("faults") / "full"
    p = _start(out)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    ckpt = safe_load(out / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == STEPS
    return ckpt


def _same(a: dict, b: dict, steps: int = STEPS) -> None:
    assert a["global_step"] == b["global_step"] == steps
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


KILLS = ([("step", s) for s in KILL_STEPS] + [("time", d) for d in KILL_DELAYS] + [("save", 1), ("save", 2)])
# two of the four seeded step kills run in the default suite, all four with -m slow (its 15-minute budget)
SLOW_KILLS = {("step", s) for s in KILL_STEPS[1::2]}


@pytest.mark.parametrize("how, when", [pytest.param(*k, marks=pytest.mark.slow) if k in SLOW_KILLS else k for k in KILLS],
                         ids=[f"{h}-{w:.2f}" if isinstance(w, float) else f"{h}-{w}" for h, w in KILLS])
def test_sigkill_then_resume_is_bit_identical(how, when, reference, tmp_path):
    out = tmp_path / "run"
    if how == "step":
        p = _start(out, faults=(f"kill_after_step={when}",))
    elif how == "save":
        p = _start(out, faults=(f"kill_in_save={when}",))
    else:
        p = _start(out)
        _wait_for_folder(p, out)
        time.sleep(when)
        p.kill()
    p.communicate(timeout=600)
    assert p.returncode in (137, -signal.SIGKILL) or (how == "time" and p.returncode == 0), p.returncode
    if how == "save":  # killed inside the write: the temporary file holds the bytes, the old checkpoint is intact
        assert list((out / "checkpoints").glob(".last.ckpt.*.tmp"))
        if when == 2:
            assert safe_load(out / "checkpoints" / "last.ckpt")["global_step"] == STEPS // 2
    _checkpoints_load(out)
    _same(reference, _finish(out))


@pytest.mark.parametrize("sig, delay", [(signal.SIGTERM, d) for d in TERM_DELAYS] + [(signal.SIGINT, TERM_DELAYS[0])],
                         ids=["sigterm-a", "sigterm-b", "sigint"])
def test_signal_checkpoints_the_step_and_resumes_bit_identical(sig, delay, reference, tmp_path):
    out = tmp_path / "run"
    p = _start(out)
    _wait_for_folder(p, out)
    time.sleep(delay)
    p.send_signal(sig)
    _, err = p.communicate(timeout=600)
    if (out / "summary.json").is_file():  # the run ended before the signal came (or after its summary): nothing lost
        pytest.skip(f"the run finished within {delay:.2f} s")
    assert p.returncode == 128 + sig, (p.returncode, err[-2000:])
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"sslab: stopped by {signal.Signals(sig).name} after step ") and "--resume" in line, line
    step = int(line.split("after step ")[1].split(";")[0])
    assert safe_load(out / "checkpoints" / "last.ckpt")["global_step"] == step  # the step it stopped after
    _same(reference, _finish(out))


def test_signal_during_the_final_evaluation_stops_it_unsummarised(tmp_path, monkeypatch, capsys):
    """SIGTERM while the final kNN is computed (training is over, its checkpoint written): exit 143 with the one
    line, no summary.json; --resume trains nothing more, evaluates again and writes it. (In-process, to patch the
    kNN: the weights are compared with the stopped run's own checkpoint, not with the subprocess reference, whose
    process state -- thread counts, earlier tests' settings -- this one does not share.)"""
    from sslab.cli import main

    train_module = importlib.import_module("sslab.engine.train")  # the module (the package exports its function)

    real = train_module.knn_accuracy

    def signalled(*a, **kw):
        os.kill(os.getpid(), signal.SIGTERM)  # recorded by the run's handler, as a scheduler's would be
        return real(*a, **kw)

    out, outside = tmp_path / "run", []  # a handler of the caller's: a signal reaching it escaped the run
    caller = lambda signum, frame: outside.append(signum)  # noqa: E731
    previous = signal.signal(signal.SIGTERM, caller)
    monkeypatch.setattr(train_module, "knn_accuracy", signalled)
    try:
        code = main(["train", *RUN, "--out", str(out)])
        assert signal.getsignal(signal.SIGTERM) is caller  # the handler it replaced is back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 128 + signal.SIGTERM and not outside
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"sslab: stopped by SIGTERM after step {STEPS};")
    assert not (out / "summary.json").exists()
    stopped = safe_load(out / "checkpoints" / "last.ckpt")
    monkeypatch.setattr(train_module, "knn_accuracy", real)
    assert main(["train", "--resume", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == STEPS
    _same(stopped, safe_load(out / "checkpoints" / "last.ckpt"))


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    """The second checkpoint write fails as a full disk does (ENOSPC after half the bytes): the first stays."""
    import sslab.io as io_module
    from sslab.cli import main

    real_save, calls = torch.save, []

    def filling(obj, f, *a, **kw):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"\0" * 4096)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f.name)
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(io_module.torch, "save", filling)
    out = tmp_path / "run"
    assert main(["train", *RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sslab: error: No space left on device") and len(err[-1]) < 300, err[-1]
    monkeypatch.setattr(io_module.torch, "save", real_save)
    assert safe_load(out / "checkpoints" / "last.ckpt")["global_step"] == STEPS // 2
    assert not list((out / "checkpoints").glob(".*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_image_folder_run_resumes_bit_identical(sig, tmp_path):
    """An image folder read through DataLoader workers (one process: ResumableLoader), killed in its second
    epoch (SIGKILL: resumed from epoch 1's checkpoint) or stopped mid-epoch (SIGTERM at a step, via
    the runner's term_during_step), ends as the uninterrupted run."""
    from ondisk import write_imagefolder

    write_imagefolder(tmp_path / "data", ["a", "b", "c"], per_class=8, size=24)
    run = ["dataset=imagefolder", f"data_root={tmp_path / 'data'}", "image_size=16", "backbone=convnet", "width=0.25",
           "batch_size=4", "epochs=2", "deterministic=true", "eval.baselines=false", "eval.linear=false",
           "eval.knn_every=1", "diagnostics.every=0", "progress=false", "num_workers=2", "proj_hidden_dim=32",
           "proj_dim=16", "pred_hidden_dim=32", "decode=workers"]
    r = _train(tmp_path / "full", *run)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "cut"
    if sig == signal.SIGKILL:
        r = _train(out, *run, faults=("kill_after_step=9",))  # 6 steps per epoch: dies in epoch 2
        assert r.returncode == 137 and safe_load(out / "checkpoints" / "last.ckpt")["global_step"] == 6
    else:
        r = _train(out, *run, faults=("term_during_step=9",))
        assert r.returncode == 143 and safe_load(out / "checkpoints" / "last.ckpt")["global_step"] == 9, r.stderr[-2000:]
    r = _train(out, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    _same(*(safe_load(d / "checkpoints" / "last.ckpt") for d in (tmp_path / "full", out)), steps=12)


def test_two_process_ddp_run_stops_on_sigterm_and_resumes_bit_identical(tmp_path):
    """Two CPU processes (DDP, gloo): a SIGTERM during step 20 (a logging step, where the ranks agree) stops both
    after it with one checkpoint of step 20; the resumed run ends as the uninterrupted 2-process run."""
    run = [*RUN, "epochs=3", "accelerator=cpu", "devices=2", "strategy=ddp"]  # 1437 / 128 = 11 steps per epoch
    r = _train(tmp_path / "full", *run)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "cut"
    r = _train(out, *run, faults=("term_during_step=20",))
    assert r.returncode == 143, r.stderr[-2000:]
    assert "sslab: stopped by SIGTERM after step 20;" in r.stderr
    assert safe_load(out / "checkpoints" / "last.ckpt")["global_step"] == 20
    r = _train(out, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    _same(*(safe_load(d / "checkpoints" / "last.ckpt") for d in (tmp_path / "full", out)), steps=33)
