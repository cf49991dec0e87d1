"""The engine's speed settings: precision=auto, TF32 / cuDNN flags, DDP options, decoding workers,
checkpoint_every and compile=true (what each resolves to; the GPU speed itself is `sslab bench`'s)."""

from __future__ import annotations

import json

import pytest
import torch
from test_engine import TINY, run_cli

from sslab.config import resolve
from sslab.engine.guard import RunGuard
from sslab.engine.prepare import decode_workers, gpu_defaults, resolve_precision, strategy_of


def test_precision_auto_is_bf16_on_gpus_that_have_it_and_float32_on_cpu(monkeypatch):
    assert resolve(None, []).precision == "auto"
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("16-mixed", "cpu") == "16-mixed"  # an explicit value is kept
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "gpu") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "gpu") == "16-mixed"


def test_gpu_defaults_set_tf32_and_cudnn_benchmark_but_not_in_deterministic_runs():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
             torch.get_float32_matmul_precision())
    try:
        gpu_defaults(resolve(None, []))
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "high"
        gpu_defaults(resolve(None, ["tf32=false", "deterministic=true"]))
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.benchmark
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved[:3]
        torch.set_float32_matmul_precision(saved[3])


def test_ddp_options_reach_lightnings_ddp_strategy():
    from lightning.pytorch.strategies import DDPStrategy

    assert strategy_of(resolve(None, []), world=1) == "auto"
    cfg = resolve(None, ["ddp.broadcast_buffers=false", "ddp.static_graph=true"])
    strategy = strategy_of(cfg, world=2)
    assert isinstance(strategy, DDPStrategy)
    assert strategy._ddp_kwargs == {"broadcast_buffers": False, "gradient_as_bucket_view": True, "static_graph": True,
                                    "find_unused_parameters": False}
    assert strategy_of(resolve(None, ["strategy=ddp_spawn"]), world=2) == "ddp_spawn"  # another name: Lightning's


def test_decoding_workers_default_to_the_cores_per_device():
    import os

    cores = len(os.sched_getaffinity(0))
    assert decode_workers(resolve(None, [])) == max(1, cores)
    assert decode_workers(resolve(None, ["devices=4"])) == max(1, cores // 4)
    assert decode_workers(resolve(None, ["num_workers=0"])) == 0
    assert decode_workers(resolve(None, ["predecode=true"])) == 0  # a memory map is read fastest in-process


def test_checkpoint_every_n_epochs_and_always_the_last():
    saved = []

    class Trainer:
        max_epochs, current_epoch, callbacks = 5, 0, []

        def save_checkpoint(self, path):
            saved.append(self.current_epoch + 1)

    trainer, guard = Trainer(), RunGuard(every=2)
    for epoch in range(5):
        trainer.current_epoch = epoch
        guard.open_epoch_end(trainer)
    assert saved == [2, 4, 5]


def test_compile_true_trains_a_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", *TINY, "epochs=1", "compile=true", "compile_args={backend: aot_eager}", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["precision"] == "32-true" and summary["knn_top1"] > 0.3
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert not any("_orig_mod" in k for k in ckpt["state_dict"])  # compiled in place: the usual keys


@pytest.mark.gpu
def test_gpu_run_uses_bf16_by_default(tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", *TINY, "epochs=1", "accelerator=gpu", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["precision"] in ("bf16-mixed", "16-mixed")


def test_knn_monitor_uses_a_subset_during_training_and_everything_at_the_end():
    from sslab.data import TensorImages
    from sslab.engine.callbacks import KNNMonitor
    from sslab.nets import create_backbone

    data = TensorImages(torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8), torch.arange(20) % 4, [])
    net = create_backbone("convnet", in_channels=1, width=0.25)
    monitor = KNNMonitor(data, data, 8, (0.5,), (0.25,), subset=6)
    assert [t.shape[0] for t in monitor.features_of(net, "cpu", partial=True)] == [6, 6, 6, 6]
    assert [t.shape[0] for t in monitor.features_of(net, "cpu")] == [20, 20, 20, 20]
    assert resolve(None, []).eval.knn_subset == 0  # by default every evaluation uses everything
