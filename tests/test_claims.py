"""The claims study (``sslab reproduce claims``): the registered predictions file, the judge (controls, collapse
criteria, correlations, Holm), the metrics of a run, the held-out split, resuming, and --quick end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
import yaml

from sslab.claims import run_study, stats
from sslab.claims.judge import judge, judge_claim, values_of
from sslab.claims.plan import gated_arms, needed_arms
from sslab.claims.predictions import PREDICTIONS, PredictionError, load
from sslab.claims.report import write_report
from sslab.claims.runs import Job, _fit, _trace, _train, arm_config, metrics_of, overrides_of, run_jobs
from sslab.claims.study import ARMS, HOLDOUT, QUICK_ARMS, SETTINGS
from sslab.config import save
from sslab.diagnostics.predictor import live_alignment

REGISTRY = load()


def _run(arm, seed, knn, random=0.65, **metrics):
    m = {"knn": knn, "random_encoder": random, "knn_gain": knn - random, "center_norm": 0.3, "aug_mean_norm": 0.9,
         "effective_rank": 40.0, "log_effective_rank": math.log(40.0), "rankme": 40.0, "rankme_fraction": 40 / 128,
         **metrics}
    if "effective_rank" in metrics:
        m["log_effective_rank"] = math.log(metrics["effective_rank"])
    return {"arm": arm, "seed": seed, "kind": "run", "metrics": m}


def _claim(cid):
    return next(c for c in REGISTRY.claims if c.id == cid)


def _prediction(result, pid):
    return next(p for p in result["predictions"] if p["id"] == pid)


# --------------------------------------------------------------------------- the predictions file

def test_the_registered_file_loads_and_names_real_arms():
    assert REGISTRY.path == str(PREDICTIONS) and len(REGISTRY.sha256) == 64
    ids = [p.id for p in REGISTRY.predictions()]
    assert len(ids) == len(set(ids)) >= 40
    for p in REGISTRY.predictions():
        assert set(p.needs()) <= set(ARMS), p.id
        assert p.basis in ("sourced", "our reading")
        if p.kind not in ("collapse", "no_collapse"):
            assert p.sesoi_why, f"{p.id}: every SESOI has its reason"
    # the required pieces: Tian's four Table 3 cells, the tuned Garrido arms, both DirectCopy norms
    arms = set(needed_arms(REGISTRY))
    assert {"tian_linear", "tian_linear_no_ema", "tian_symmetric", "tian_symmetric_no_ema"} <= arms
    assert {"simclr_tuned", "vicreg_tuned", "vicreg_exp_tuned", "directcopy_fro"} <= arms
    assert REGISTRY.controls["margin"] == 0.05 and REGISTRY.seeds["budget_minutes"] == 120


@pytest.mark.parametrize("edit, message", [
    (lambda c: c[0]["predictions"][0].update(arm="nope"), "arm 'nope' is not one of"),
    (lambda c: c[0]["predictions"][2].update(kind="bigger"), "kind 'bigger' is not one of"),
    (lambda c: c[0]["predictions"][2].update(metric="accuracy"), "metric 'accuracy' is not one of"),
    (lambda c: c[0]["predictions"][2].pop("sesoi"), "missing 'sesoi'"),
    (lambda c: c[0]["predictions"][2].update(sesoi=-1), "sesoi -1.0 must be >= 0"),
    (lambda c: c[0]["predictions"][2].update(colour="red"), "unknown field 'colour'"),
    (lambda c: c[1]["predictions"].append(dict(c[0]["predictions"][2])), "duplicate prediction id"),
])
def test_a_bad_predictions_file_is_one_line_naming_the_prediction(tmp_path, edit, message):
    raw = yaml.safe_load(PREDICTIONS.read_text())
    edit(raw["claims"])
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(PredictionError, match=message) as e:
        load(path)
    assert "\n" not in str(e.value) and "/" in str(e.value)


# --------------------------------------------------------------------------- the judge

def _byol_block(gain=0.10, seeds=(0, 1, 2)):
    """byol learning (kNN random + gain) and byol_no_predictor collapsed dimensionally."""
    recs = [_run("byol", s, 0.65 + gain + 0.01 * s, effective_rank=40.0 + s) for s in seeds]
    recs += [_run("byol_no_predictor", s, 0.55 + 0.01 * s, effective_rank=8.0 + s, center_norm=1.0) for s in seeds]
    recs += [_run("simsiam", s, 0.75 + 0.005 * s, effective_rank=31.0) for s in seeds]
    recs += [_run("simsiam_no_predictor", s, 0.62 - 0.01 * s, effective_rank=6.0) for s in seeds]
    return recs


def test_collapse_predictions_from_their_criteria():
    result = judge_claim(_claim("tian-predictor"), values_of(_byol_block()), REGISTRY)
    byol = _prediction(result, "byol-no-predictor-collapses")
    assert byol["verdict"] == stats.SUPPORTED and [c["verdict"] for c in byol["criteria"]] == [stats.SUPPORTED] * 2
    # rank criterion: ln(rank_ref / 3) − ln(rank_arm) per seed, by hand
    assert byol["criteria"][0]["interval"]["by_seed"][0] == pytest.approx(math.log(40 / 3 / 8))
    assert _prediction(result, "byol-needs-predictor-knn")["verdict"] == stats.SUPPORTED
    assert result["verdict"] == stats.SUPPORTED


def test_a_run_that_keeps_its_rank_contradicts_a_collapse():
    recs = _byol_block()
    recs = [r for r in recs if r["arm"] != "byol_no_predictor"]
    recs += [_run("byol_no_predictor", s, 0.70 + 0.01 * s, effective_rank=39.0 + s) for s in range(3)]
    byol = _prediction(judge_claim(_claim("tian-predictor"), values_of(recs), REGISTRY), "byol-no-predictor-collapses")
    assert byol["verdict"] == stats.CONTRADICTED


def test_a_failing_positive_control_means_not_tested_here():
    """A planted failing control: byol beats its random encoder by only 1 point, so every prediction leaning on it
    is "not tested here" -- never "contradicted" -- while simsiam's predictions are still judged."""
    result = judge_claim(_claim("tian-predictor"), values_of(_byol_block(gain=0.01)), REGISTRY)
    for pid in ("byol-no-predictor-collapses", "byol-needs-predictor-knn"):
        p = _prediction(result, pid)
        assert p["verdict"] == stats.NOT_TESTED and "positive control not passed: byol beats its random encoder" in p["reason"]
    assert _prediction(result, "simsiam-no-predictor-collapses")["verdict"] == stats.SUPPORTED
    # the arms only those predictions read are then not run at all
    recs = [_run("tian_linear", s, 0.64 + 0.001 * s) for s in range(3)]
    skipped = gated_arms(REGISTRY, needed_arms(REGISTRY), recs)
    assert "tian_symmetric_no_ema" in skipped and "tian_linear" not in skipped and "byol_no_predictor" not in skipped
    # a control arm whose every reader also leans on the failed control is gated too; tian_directpred is not
    assert "tian_linear_no_ema" in skipped and "tian_directpred" not in skipped


def test_an_unclear_control_gates_nothing_and_asks_for_seeds():
    """byol clears the margin on average but its interval reaches 0: "not tested here" for now, no arm gated,
    and the next round gives its predictions' arms more seeds."""
    from sslab.claims.judge import control, underpowered_arms

    recs = _byol_block(gain=0.0)
    recs = [r for r in recs if r["arm"] != "byol"] + [_run("byol", s, 0.65 + g, effective_rank=40.0)
                                                       for s, g in enumerate([0.01, 0.25, 0.04])]
    ctl = control("byol", values_of(recs), 0.05)
    assert ctl["status"] == "unclear" and ctl["mean"] >= 0.05 and ctl["low"] <= 0
    assert gated_arms(REGISTRY, needed_arms(REGISTRY), recs) == []
    results = judge(REGISTRY, recs)
    assert {"byol", "byol_no_predictor"} <= underpowered_arms(results, REGISTRY)
    assert "tian_wd0" not in underpowered_arms(results, REGISTRY)  # the all-arms correlation adds nothing


def test_no_collapse_is_supported_when_a_criterion_lies_on_the_healthy_side():
    recs = [_run("byol", s, 0.76 + 0.01 * s, effective_rank=40.0) for s in range(3)]
    recs += [_run("byol_m0", s, 0.70 + 0.01 * s, effective_rank=30.0 + s) for s in range(3)]
    recs += [_run("byol_m0.99", s, 0.60 + 0.001 * s, effective_rank=5.0 + 0.1 * s) for s in range(3)]
    result = judge_claim(_claim("jha-momentum"), values_of(recs), REGISTRY)
    assert _prediction(result, "ema0-no-collapse")["verdict"] == stats.SUPPORTED
    assert _prediction(result, "ema099-no-collapse")["verdict"] == stats.CONTRADICTED  # both criteria say collapsed
    assert result["verdict"] == stats.CONTRADICTED


def test_correlation_is_spearman_per_seed_across_arms():
    arms = ["byol", "simsiam", "simclr", "vicreg", "swav"]
    recs = [_run(a, s, 0.6 + 0.05 * i + 0.001 * s, center_early=0.9 - 0.1 * i) for s in range(3) for i, a in
            enumerate(arms)]
    p = _prediction(judge_claim(_claim("jha-early-center"), values_of(recs), REGISTRY), "early-center-predicts-knn")
    assert p["interval"]["by_seed"] == {0: pytest.approx(1.0), 1: pytest.approx(1.0), 2: pytest.approx(1.0)}
    assert p["verdict"] == stats.SUPPORTED


def test_correlation_uses_only_seeds_where_every_arm_ran():
    arms = ["byol", "simsiam", "simclr", "vicreg", "swav"]
    recs = [_run(a, s, 0.6 + 0.05 * i, center_early=0.9 - 0.1 * i) for s in range(3) for i, a in enumerate(arms)]
    recs += [_run(a, 3, 0.9 - 0.05 * i, center_early=0.9 - 0.1 * i) for i, a in enumerate(arms[:3])]  # a later round
    p = _prediction(judge_claim(_claim("jha-early-center"), values_of(recs), REGISTRY), "early-center-predicts-knn")
    assert sorted(p["interval"]["by_seed"]) == [0, 1, 2]


def test_holm_is_applied_within_a_claim():
    """Table 6's three predictions: differences 0.04, 0.03, 0.02 (t = 5.20, df 2, one-sided p = 0.0175) for both ε
    effects and exactly 0 for ρ (TOST p = 0). Alone each ε effect is supported; Holm multiplies 0.0175 by 2."""
    recs = [_run("directpred", s, 0.74 + 0.02 * s) for s in range(3)]
    recs += [_run("directpred_eps0", s, v) for s, v in enumerate([0.70, 0.73, 0.76])]
    recs += [_run("directpred_rho05", s, 0.74 + 0.02 * s) for s in range(3)]
    recs += [_run("directpred_rho05_eps0", s, v) for s, v in enumerate([0.70, 0.73, 0.76])]
    result = judge_claim(_claim("tian-rho-eps"), values_of(recs), REGISTRY)
    eps = _prediction(result, "eps-helps-at-rho03")
    assert eps["p"] == pytest.approx(0.0175, abs=2e-4) and eps["p_holm"] == pytest.approx(2 * eps["p"])
    assert eps["interval"]["low"] > 0 and eps["verdict"] == stats.UNDERPOWERED
    assert _prediction(result, "rho-matters-little")["verdict"] == stats.SUPPORTED


def test_an_edited_prediction_changes_the_report(tmp_path):
    """The report is generated from the file: raising a SESOI past the measured effect turns "supported" into
    "contradicted" in the markdown and the JSON."""
    recs = _byol_block()
    header = {"command": "t", "date": "d", "commit": "c", "predictions_sha256": "0" * 64, "registered": "r", "runs": 6,
              "failed": 0, "minutes": 1.0, "invocations": 1, "jobs": 2, "cores": 2, "torch": "t", "settings": [],
              "rounds": [[0, 1, 2]], "stopping": "s", "tuned": {}}
    first = write_report(REGISTRY, judge(REGISTRY, recs), recs, tmp_path / "a.md", header).read_text()
    raw = yaml.safe_load(PREDICTIONS.read_text())
    raw["claims"][0]["predictions"][2]["sesoi"] = 0.5  # byol-needs-predictor-knn: the effect is ~0.2
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    edited = load(path)
    second = write_report(edited, judge(edited, recs), recs, tmp_path / "b.md", header).read_text()
    assert "(sym) \\| 74.51" in first  # a | inside a quote is escaped, not a new table cell
    row = lambda text: next(line for line in text.splitlines() if line.startswith("| byol-needs-predictor-knn"))  # noqa: E731
    assert "**supported**" in row(first) and "**contradicted**" in row(second)
    data = json.loads((tmp_path / "b" / "claims.json").read_text())
    assert _prediction(data["claims"][0], "byol-needs-predictor-knn")["sesoi"] == 0.5


# --------------------------------------------------------------------------- metrics of one run

def test_metrics_of_a_run():
    trace = [{"step": s, "center_norm": 0.95 - 0.1 * (s / 40), "pred_commutator": 0.1 - 0.01 * (s / 40)}
             for s in range(0, 320, 40)]
    summary = {"knn_top1": 0.7, "steps": 312, "embedding_dim": 128,
               "baselines": {"random_init_knn_top1": 0.65, "raw_pixel_knn_top1": 0.6},
               "diagnostics": {"center_norm": 0.2, "aug_mean_norm": 0.9, "effective_rank": 30.0, "rankme": 12.8,
                               "pred_commutator": 0.02, "verdict": "healthy"}}
    m = metrics_of(summary, trace)
    assert m["knn_gain"] == pytest.approx(0.05) and m["invariance_gap"] == pytest.approx(0.7)
    assert m["rankme_fraction"] == pytest.approx(0.1) and m["log_effective_rank"] == pytest.approx(math.log(30))
    assert m["center_drop"] == pytest.approx(0.75)
    assert m["center_early"] == pytest.approx(0.95 - 0.1 * 2)  # the probe at step 80, nearest 0.25 x 312 = 78
    assert m["commutator_drop"] == pytest.approx(0.08)
    assert "verdict" not in m


def test_theory_metrics_by_hand():
    from sslab.claims.runs import theory_metrics

    m = theory_metrics("tian-linear", {"max_balance_residual_flow": 1e-9, "final_commutator_flow": 0.01,
                                       "initial_commutator": 1.0})
    assert m == {"log10_balance_residual": pytest.approx(-9), "log_commutator_ratio": pytest.approx(math.log(0.01))}
    grid = [{"eta": 0.1, "sgd_collapsed": False}, {"eta": 0.3, "sgd_collapsed": True}, {"eta": 0.4, "sgd_collapsed": False}]
    m = theory_metrics("tian-phase", {"grid": grid, "collapse_threshold_eta": 0.2, "sgd_ode_agreement": 0.75})
    assert m == {"phase_agreement": 0.75, "collapse_above_threshold": 0.5}
    acc = {"learned projection W x": [0.6, 0.8], "raw input": [0.55, 0.6]}
    assert theory_metrics("directset", {"labels": [4, 8], "probe_accuracy": acc, "kept_agreement": 1.0})["probe_gain"] == \
        pytest.approx(0.2)


def test_live_alignment_ignores_dead_modes():
    """Tian et al. predict alignment of the modes that carry signal: 3 aligned live modes among 125 dead ones
    read 1.0 over the live modes, 3/128 over all of them."""
    s = torch.tensor([1.0, 0.5, 0.1] + [1e-6] * 125)
    cos = torch.tensor([1.0, 1.0, 1.0] + [0.0] * 125)
    assert live_alignment(s, cos) == pytest.approx(1.0) and float(cos.mean()) == pytest.approx(3 / 128)


def test_trace_keeps_one_record_per_step(tmp_path):
    """A resumed run logs the steps after its last checkpoint again: the later record wins; scalars only."""
    path = tmp_path / "diagnostics.jsonl"
    rows = [(0, 1.0), (20, 2.0), (40, 3.0), (20, 2.5), (40, 3.5), (60, 4.0)]
    path.write_text("".join(json.dumps({"step": s, "l_c": v, "spectrum": [1], "verdict": "healthy"}) + "\n"
                            for s, v in rows))
    assert _trace(path) == [{"step": 0, "l_c": 1.0}, {"step": 20, "l_c": 2.5}, {"step": 40, "l_c": 3.5},
                            {"step": 60, "l_c": 4.0}]


# --------------------------------------------------------------------------- the held-out split

def test_holdout_is_a_fixed_disjoint_part_of_the_training_split():
    from sslab.build import build

    cfg = arm_config(ARMS["simclr_tuned"], 3, SETTINGS, tuned={"temperature": 0.1}, holdout=HOLDOUT)
    built = build(cfg)
    assert len(built.test) == HOLDOUT and len(built.train) == 4000 - HOLDOUT and built.pretrain is built.train
    again = build(arm_config(ARMS["vicreg_tuned"], 7, SETTINGS, tuned={"sim_coeff": 10.0}, holdout=HOLDOUT))
    assert torch.equal(built.test.images, again.test.images)  # the same images for every seed and arm
    full = build(arm_config(ARMS["simclr"], 0, SETTINGS))
    rows = {bytes(x.numpy()) for x in full.train.images}
    assert all(bytes(x.numpy()) in rows for x in built.test.images[:50])  # from the training split, not the test split


def test_holdout_errors_are_one_line():
    from sslab.build import build
    from sslab.config import ConfigError, resolve

    with pytest.raises(ConfigError, match="holdout=4000 leaves no training images; valid range: 1 to 3999"):
        build(resolve("byol_mnist5k@shifted_mnist", ["holdout=4000"]))


# --------------------------------------------------------------------------- running and resuming

@pytest.fixture
def fake_train(monkeypatch):
    """sslab.engine.train replaced by a recorder: which runs would train, and whether they resume."""
    calls = []

    def train(cfg, folder, resume=False):
        calls.append(resume)
        if resume and getattr(train, "fail_resume", False):
            raise RuntimeError("Error(s) in loading state_dict: size mismatch")
        return {"knn_top1": 0.6}

    monkeypatch.setattr("sslab.engine.train", train)
    train.calls = calls
    return train


def test_a_folder_of_other_settings_is_set_aside_not_deleted(tmp_path, fake_train):
    cfg = arm_config(ARMS["byol"], 0, SETTINGS)
    folder = tmp_path / "byol-s0"
    folder.mkdir()
    (folder / "config.yaml").write_text("method: simclr\n")
    (folder / "summary.json").write_text('{"knn_top1": 0.9}')
    assert _fit(cfg, folder) == {"knn_top1": 0.6} and fake_train.calls == [False]
    assert json.loads((tmp_path / "byol-s0.replaced" / "summary.json").read_text()) == {"knn_top1": 0.9}


def test_a_finished_run_of_the_same_config_is_read_back(tmp_path, fake_train):
    cfg = arm_config(ARMS["byol"], 0, SETTINGS)
    folder = tmp_path / "byol-s0"
    folder.mkdir()
    save(cfg, folder / "config.yaml")
    (folder / "summary.json").write_text('{"knn_top1": 0.7}')
    assert _fit(cfg, folder) == {"knn_top1": 0.7} and fake_train.calls == []


def test_a_checkpoint_that_cannot_resume_starts_the_run_again(tmp_path, fake_train):
    cfg = arm_config(ARMS["byol"], 0, SETTINGS)
    folder = tmp_path / "byol-s0"
    (folder / "checkpoints").mkdir(parents=True)
    save(cfg, folder / "config.yaml")
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"x")
    fake_train.fail_resume = True
    assert _fit(cfg, folder) == {"knn_top1": 0.6} and fake_train.calls == [True, False]
    assert (tmp_path / "byol-s0.replaced" / "checkpoints" / "last.ckpt").is_file()


def _job(tmp_path, arm="byol", seed=0):
    return Job(arm, ARMS[arm], seed, tuple(overrides_of(ARMS[arm], seed, SETTINGS)), tmp_path / "runs" / f"{arm}-s{seed}")


def test_a_failing_run_is_a_failed_record(tmp_path, monkeypatch):
    def diverge(cfg, folder):
        raise FloatingPointError("non-finite loss nan at step 12")

    monkeypatch.setattr("sslab.claims.runs._fit", diverge)
    job = _job(tmp_path)
    rec = _train(job, 1)
    assert rec["failed"] == "FloatingPointError: non-finite loss nan at step 12" and "metrics" not in rec
    assert not (job.folder / "record.json").exists()  # retried next time


def test_finished_runs_are_kept_and_their_metrics_recomputed(tmp_path, monkeypatch):
    """A stopped study picks up where it was: a record with the same overrides is reused (its metrics recomputed
    from the kept summary, so a metric added later reads old runs), nothing trains."""
    job = _job(tmp_path)
    job.folder.mkdir(parents=True)
    summary = {"knn_top1": 0.7, "baselines": {"random_init_knn_top1": 0.6}, "diagnostics": {}, "steps": 744}
    (job.folder / "record.json").write_text(json.dumps({**job.head(), "metrics": {"knn": 0.7}, "summary": summary,
                                                        "trace": [], "seconds": 1.0}))

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("sslab.claims.runs.ProcessPoolExecutor", no_training)
    (rec,) = run_jobs([job], progress=lambda s: None)
    assert rec["metrics"]["knn_gain"] == pytest.approx(0.1)
    with pytest.raises(PredictionError, match="unknown arm 'nope'; valid choices: byol"):
        run_study(tmp_path, arms=["nope"])


def test_arm_overrides_reach_the_config():
    cfg = arm_config(ARMS["tian_symmetric_no_ema"], 1, SETTINGS)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.warmup_epochs) == ("sgd", 0.03, 4e-4, 0)
    assert cfg.method_args["momentum"] == 0.0 and cfg.method_args["symmetric_predictor"] is True
    assert cfg.method_args["pred_lr_ratio"] == 1.0 and cfg.method_args["loss_scale"] == "byol" and cfg.epochs == 24
    assert arm_config(ARMS["simclr"], 0, SETTINGS).epochs == 8 and cfg.seed == 1


# --------------------------------------------------------------------------- the command

def test_quick_study_end_to_end(tmp_path):
    """`sslab reproduce claims --quick`: tunes on the held-out split, trains the quick arms (one seed, 1 epoch),
    times the predictors, and writes the report, the plots and the JSON of every run."""
    out = tmp_path / "claims"
    proc = subprocess.run([sys.executable, "-m", "sslab", "reproduce", "claims", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = (out / "claims.md").read_text()
    data = json.loads((out / "claims" / "claims.json").read_text())
    assert {r["arm"] for r in data["runs"] if r["kind"] != "tuning"} == set(QUICK_ARMS)
    assert {r["arm"].split("~")[0] for r in data["runs"] if r["kind"] == "tuning"} == {"simclr_tuned"}
    assert {c["id"] for c in data["claims"]} == {c.id for c in REGISTRY.claims}
    for c in data["claims"]:
        assert c["verdict"] == stats.NOT_TESTED  # one seed: no interval, no verdict
        assert f"### {c['id']}: {c['verdict']}" in report
    cost = next(r for r in data["runs"] if r["arm"] == "cost_directpred_d128")
    assert cost["metrics"]["predictor_ms"] > 0 and 0 < cost["metrics"]["predictor_fraction"] < 1
    for png in ("forest.png", "center.png", "predictor.png"):
        assert (out / "claims" / png).stat().st_size > 1000
    assert data["predictions_sha256"] == REGISTRY.sha256 and "## What could not be tested here, and why" in report


def test_claims_rejects_options():
    from sslab.cli import main

    assert main(["reproduce", "claims", "epochs=3"]) == 2
    assert main(["reproduce", "claims", "--seeds", "a,b"]) == 2
