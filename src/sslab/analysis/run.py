"""A finished (or interrupted) run, read back from its folder for ``sslab analyze``.

Sources, all written by ``sslab train``: ``config.yaml``; ``summary.json`` (final numbers and the
``diagnostics`` object); ``logs/metrics.csv`` (loss, kNN, every logged scalar, by step);
``logs/diagnostics.jsonl`` (the probe set's diagnostics, spectrum and predictor modes every K
steps). Given a checkpoint instead of a folder -- or a folder whose summary has no diagnostics
(a killed run, an older version) -- the final diagnostics are recomputed from the checkpoint on
the same fixed probe views the monitor uses. :func:`probe_embedding_matrix` hands the theory lab a
run's probe-set embeddings (``sslab theory duality run=RUN_DIR``): theory never reads run folders.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..config import DiagnosticsConfig


@dataclass
class Run:
    name: str
    folder: Path
    config: dict
    summary: dict
    final: dict  # final probe-set diagnostics (summary's, or recomputed from the checkpoint)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # key -> [(step, value)]
    trace: list[dict] = field(default_factory=list)  # diagnostics.jsonl records, one per step, in step order
    checkpoint: Path | None = None

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of a trace scalar (``center_norm`` ...) or, failing that, a metrics.csv column."""
        pairs = [(r["step"], r[key]) for r in self.trace if isinstance(r.get(key), (int, float))]
        if not pairs:
            pairs = self.metrics.get(key, [])
        return [p[0] for p in pairs], [p[1] for p in pairs]

    @property
    def embedding_dim(self) -> int | None:
        return self.summary.get("embedding_dim") or (len(self.trace[-1]["spectrum"]) if self.trace else None)

    @property
    def probe_size(self) -> int:
        return int(self._diagnostics_option("probe_size"))

    @property
    def center_threshold(self) -> float:
        """The verdict's center-norm threshold this run used (``diagnostics.center_threshold``)."""
        return float(self._diagnostics_option("center_threshold"))

    @property
    def dimensional_fraction(self) -> float:
        """The verdict's effective-rank fraction this run used (``diagnostics.dimensional_fraction``)."""
        return float(self._diagnostics_option("dimensional_fraction"))

    def _diagnostics_option(self, key: str):
        """``diagnostics.<key>`` of the run's config, or ``DiagnosticsConfig``'s default (older runs lack some keys)."""
        value = (self.config.get("diagnostics") or {}).get(key)
        return getattr(DiagnosticsConfig(), key) if value is None else value


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv as ``{column: [(step, value), ...]}`` (empty cells skipped, the last value per step kept)."""
    out: dict[str, dict[int, float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                v = float(value)
                if math.isfinite(v):
                    out.setdefault(key, {})[step] = v
    return {k: sorted(v.items()) for k, v in out.items()}


def read_trace(path: Path) -> list[dict]:
    """diagnostics.jsonl records by step; a resumed run may repeat steps (the later record wins)."""
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_step[int(record["step"])] = record
    return [by_step[s] for s in sorted(by_step)]


def locate(path: str | Path) -> tuple[Path, Path | None]:
    """(run folder, checkpoint given explicitly or None) of a ``sslab analyze`` argument."""
    path = Path(path)
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise FileNotFoundError(f"{path} is not a run folder (no config.yaml): give a folder written by `sslab train` "
                                    "or its checkpoint")
        return path, None
    if path.is_file():
        for folder in (path.parent.parent, path.parent):
            if (folder / "config.yaml").is_file():
                return folder, path
        raise FileNotFoundError(f"no config.yaml next to checkpoint {path} or in its run folder")
    raise FileNotFoundError(f"run folder or checkpoint not found: {path}")


def checkpoint_probe(checkpoint: Path, device: str | torch.device = "cpu"):
    """(method on ``device``, config, step, the probe views) of a run's checkpoint: the monitor's probe set
    and views, rebuilt from the run's config."""
    from ..build import pipeline_from_config, probe_images
    from ..data import dataset_info, load_split
    from ..diagnostics.probe import probe_views
    from ..evaluate import load_method

    method, cfg, step = load_method(checkpoint)
    split = load_split(cfg.dataset, dataset_info(cfg.dataset).pretrain_split, cfg.data_root)
    views = probe_views(pipeline_from_config(cfg), probe_images(split, cfg.diagnostics.probe_size), device)
    return method.to(device), cfg, step, views


def checkpoint_diagnostics(checkpoint: Path) -> tuple[dict, dict]:
    """Final probe-set diagnostics of a checkpoint (as the monitor computes them) and a trace record for it."""
    from ..diagnostics.probe import probe_diagnostics, trace_record

    method, cfg, step, views = checkpoint_probe(checkpoint, "cuda" if torch.cuda.is_available() else "cpu")
    stats, z1, modes = probe_diagnostics(method, views, cfg.diagnostics)
    return stats | {"step": step}, trace_record(step, None, stats, z1, modes)


def probe_embedding_matrix(path: str | Path) -> tuple[torch.Tensor, str]:
    """(the probe-set embeddings ``(N, D)`` of the first view, on the CPU, a description) of a run folder or
    checkpoint: what ``sslab theory duality run=PATH`` checks. A folder's last checkpoint is used."""
    from ..diagnostics.probe import probe_embeddings

    folder, ckpt = locate(path)
    method, _, _, views = checkpoint_probe(ckpt or folder / "checkpoints" / "last.ckpt")
    z1, _ = probe_embeddings(method, views)
    return z1, f"probe-set embeddings of {folder}"


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Read a run folder (or a run's checkpoint) into a :class:`Run`."""
    folder, checkpoint = locate(path)
    config = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    metrics_path, trace_path = folder / "logs" / "metrics.csv", folder / "logs" / "diagnostics.jsonl"
    run = Run(name=name or folder.name, folder=folder, config=config, summary=summary,
              final=dict(summary.get("diagnostics") or {}),
              metrics=read_metrics(metrics_path) if metrics_path.is_file() else {},
              trace=read_trace(trace_path) if trace_path.is_file() else [], checkpoint=checkpoint)
    if checkpoint is None and not run.final:
        last = folder / "checkpoints" / "last.ckpt"
        checkpoint = last if last.is_file() else None
    if checkpoint is not None and (run.checkpoint is not None or not run.final):
        run.final, record = checkpoint_diagnostics(checkpoint)
        run.checkpoint = checkpoint
        run.trace = [r for r in run.trace if r["step"] < record["step"]] + [record]  # the trace up to this checkpoint
    if not run.final:
        raise FileNotFoundError(f"{folder} has neither a summary with diagnostics nor a checkpoint to compute them from")
    return run
