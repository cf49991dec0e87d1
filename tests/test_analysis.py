"""``sslab analyze``: the report renders, its numbers are the summary's, checkpoints and old runs work, errors are one line."""

import json
import shutil

import pytest
from matplotlib.image import imread

from sslab.analysis import analyze, load_run
from sslab.analysis.report import fmt
from sslab.cli import main
from sslab.config import resolve
from sslab.engine import train

TINY = ["dataset=digits", "backbone=convnet", "width=0.25", "batch_size=64", "deterministic=true", "eval.baselines=false",
        "eval.linear=false", "eval.knn_every=0", "optim.warmup_epochs=1", "proj_hidden_dim=32", "proj_dim=16",
        "diagnostics.every=5"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A healthy DirectPred run (linear predictor: the predictor figure) and a SimSiam run without
    stop-gradient and output BN, which collapses completely (stopped early by stop_on_collapse)."""
    root = tmp_path_factory.mktemp("runs")
    good, bad = root / "directpred", root / "simsiam_no_sg"
    train(resolve(None, TINY + ["method=directpred", "epochs=3", "momentum=0.9"]), good)
    train(resolve(None, TINY + ["method=simsiam", "stop_gradient=false", "proj_last_bn=false", "pred_hidden_dim=32",
                                "epochs=20", "optim.lr=0.01", "diagnostics.stop_on_collapse=true"]), bad)
    return good, bad


def _valid_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_single_run_report_renders_and_matches_summary(runs, tmp_path):
    good, _ = runs
    report = analyze([good], tmp_path / "a")
    out = report.parent
    for name in ("report.md", "report.html", "analysis.json"):
        assert (out / name).is_file()
    figures = json.loads((out / "analysis.json").read_text())["figures"]
    assert set(figures) == {"training.png", "center.png", "rank.png", "spectra.png", "duality.png", "predictor.png"}
    for fig in figures:
        _valid_png(out / fig)
        assert f"]({fig})" in report.read_text() and f'src="{fig}"' in (out / "report.html").read_text()
    summary = json.loads((good / "summary.json").read_text())
    data = json.loads((out / "analysis.json").read_text())["runs"][0]
    assert data["final"] == summary["diagnostics"]
    text = report.read_text()
    # every number of the final-diagnostics table is the summary's, as printed
    table = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1] for line in text.splitlines()
             if line.startswith("| ") and line.count(" | ") == 2}
    assert table["center norm ‖s‖ (plug-in)"] == fmt(summary["diagnostics"]["center_norm"])
    assert table["effective rank"] == fmt(summary["diagnostics"]["effective_rank"])
    assert table["relative ‖[F̂, Wp]‖"] == fmt(summary["diagnostics"]["pred_commutator"])
    assert table["verdict"] == summary["diagnostics"]["verdict"] == "healthy"
    assert f"{summary['diagnostics']['center_norm']:.3f}" in text  # the explanation quotes the same value
    assert fmt(summary["knn_top1"]) in text


def test_trace_sees_directpred_predictor_after_its_reset(runs):
    """The monitor runs after the method's after_step: Wp = f(F̂) exactly, so the commutator is rounding only."""
    run = load_run(runs[0])
    steps = [r["step"] for r in run.trace]
    assert steps == sorted(steps) and steps[:2] == [0, 5] and len(steps) >= 4  # step 0: the untrained model
    trained = [r for r in run.trace if r["step"] > 0]
    assert all(r["pred_commutator"] < 1e-6 and min(r["predictor"]["alignment"]) > 0.999 for r in trained)
    assert "predictor" not in run.trace[0]  # step 0: DirectPred has no F̂ estimate yet
    assert all(len(r["spectrum"]) == 16 for r in run.trace)


def test_comparison_report_names_the_difference_and_both_verdicts(runs, tmp_path):
    good, bad = runs
    report = analyze([good, bad], tmp_path / "cmp")
    text = report.read_text()
    assert "### directpred: healthy" in text and "### simsiam_no_sg: complete" in text
    assert "method=simsiam" in text and "stop_gradient=False" in text
    assert "Tian et al. (2021, Theorem 2)" in text  # the no-stop-gradient explanation
    data = json.loads((report.parent / "analysis.json").read_text())
    assert [r["final"]["verdict"] for r in data["runs"]] == ["healthy", "complete"]
    assert data["runs"][1]["summary"]["diagnostics"]["stopped_on_collapse_at"] is not None
    _valid_png(report.parent / "center.png")


def test_checkpoint_and_run_without_diagnostics_are_recomputed(runs, tmp_path):
    """From the checkpoint alone the same probe views give the summary's final numbers (independent recomputation)."""
    good, _ = runs
    summary = json.loads((good / "summary.json").read_text())["diagnostics"]
    from_ckpt = load_run(good / "checkpoints" / "last.ckpt").final
    for key in ("center_norm", "effective_rank", "aug_mean_sq", "z_std", "pred_alignment"):
        assert from_ckpt[key] == pytest.approx(summary[key], rel=1e-6, abs=1e-9)
    old = tmp_path / "old"
    shutil.copytree(good, old)
    s = json.loads((old / "summary.json").read_text())
    del s["diagnostics"]
    (old / "summary.json").write_text(json.dumps(s))
    (old / "logs" / "diagnostics.jsonl").unlink()
    run = load_run(old)
    assert run.final["verdict"] == "healthy" and run.final["center_norm"] == pytest.approx(summary["center_norm"], rel=1e-6)
    assert len(run.trace) == 1  # the checkpoint's own record: its spectrum is plotted
    analyze([old], tmp_path / "old_report")
    _valid_png(tmp_path / "old_report" / "spectra.png")


def test_analyze_bad_input_is_one_line_exit_2(runs, tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not found" in err and "nope" in err
    (tmp_path / "empty").mkdir()
    assert main(["analyze", str(tmp_path / "empty")]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(runs[0], broken)
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    assert main(["analyze", str(broken / "checkpoints" / "last.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "corrupt" in err
    assert not (broken / "analysis").exists()  # nothing written for a run that cannot be read
