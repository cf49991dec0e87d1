"""`sslab reproduce`: every recipe resolves, carries its published number and source, and trains two
steps on tiny data in its dataset's exact on-disk format; the docs tables are generated from the recipes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from ondisk import write_cifar, write_imagefolder, write_stl10

from sslab.build import method_from_config
from sslab.cli import main
from sslab.config import RECIPE_DIR, ConfigError
from sslab.data import DataError, load_split
from sslab.data.datasets import CIFAR10, CIFAR100, missing_files
from sslab.data.imagefolder import IMAGENET100_CLASSES, read_class_list
from sslab.reproduce import (
    METRICS,
    REPRODUCE_TABLE,
    SETTINGS_TABLE,
    Reproduction,
    describe,
    reproduction,
    reproductions,
    reproductions_table,
    run,
    score,
    settings_table,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"
REPRODUCTIONS = reproductions()
FIRST_ROWS: dict[str, Reproduction] = {}
for _r in REPRODUCTIONS.values():
    FIRST_ROWS.setdefault(_r.recipe, _r)
RECIPES = sorted(FIRST_ROWS.items())
CONFIGS = {n: r.config() for n, r in RECIPES}  # each recipe's first row, resolved once
SMALL = ("cifar10", "cifar100", "stl10")
#: two optimiser steps on CPU: one epoch of 2 batches, no evaluation extras, 32-bit, no SyncBN
FAST = ["verify_md5=false", "strict_counts=false", "epochs=1", "batch_size=4", "precision=32-true", "sync_batchnorm=false",
        "eval.linear=false", "eval.baselines=false", "eval.knn_every=0", "diagnostics.every=0", "num_workers=0",
        "progress=false", "accelerator=cpu", "devices=1"]


def test_every_reproduction_resolves_and_names_paper_table_metric_source():
    assert len(RECIPES) >= 40 and len(REPRODUCTIONS) >= 150
    for name, r in REPRODUCTIONS.items():
        cfg = r.config()
        assert r.paper and r.table and r.source and r.metric in METRICS, name
        if r.expected is None:  # no published number: the recipe must say why
            assert r.not_found and "NOT FOUND" in r.source, name
        else:
            assert 0 < r.expected < 100 and (r.std is None or 0 <= r.std < 20), name
        header = [ln for ln in (RECIPE_DIR / f"{r.recipe}.yaml").read_text().splitlines() if ln.startswith("#")]
        assert header, f"{r.recipe}: no header comment"
        first_author = r.paper.split(",")[0].split()[0]
        assert any(name in ln for ln in header for name in (first_author, "solo-learn", "LightlySSL")), r.recipe
        lines = describe(r, cfg)
        text = "\n".join(lines)
        assert f"expected {r.metric}" in text and f"\nmethod: {cfg.method}\n" in text, name


@pytest.mark.parametrize("recipe", [n for n, cfg in CONFIGS.items() if cfg.dataset in SMALL])
def test_every_row_builds_its_method(recipe):
    """Each table cell's options are real options of its method with valid values (the backbone and
    heads are built, no data is read)."""
    for r in REPRODUCTIONS.values():
        if r.recipe == recipe:
            method_from_config(r.config())


def _published(section: str) -> list[list[str]]:
    """The table rows of a section of peers.md (the survey the numbers were copied from), as cells."""
    text = (SHARED / "peers.md").read_text()
    body = text[text.index(section):]
    body = body[: body.index("\n### ", 1)]
    rows = [[c.strip().replace(" 🚀", "") for c in ln.strip().strip("|").split("|")] for ln in body.splitlines()
            if ln.startswith("|")]
    return [r for r in rows if any(re.fullmatch(r"\d+\.\d+", c) for c in r)]


SOLO_NAMES = {"barlow_twins": "Barlow Twins", "byol": "BYOL", "dino": "DINO", "moco_v2": "MoCo V2+", "moco_v3": "MoCo V3",
              "nnclr": "NNCLR", "simclr": "SimCLR", "simsiam": "SimSiam", "swav": "SwAV", "vicreg": "VICReg", "w_mse": "W-MSE"}


@pytest.mark.skipif(not (SHARED / "peers.md").is_file(), reason="the peer survey (../shared/reference) is not here")
def test_solo_learn_numbers_equal_the_peer_survey():
    c10 = {r[0]: float(r[1]) for r in _published("### B.1")}
    c100 = {r[0]: float(r[1]) for r in _published("### B.2")}
    in100 = {r[0]: float(r[3]) for r in _published("### B.3") if r[1] == "R18"}  # Acc@1 online, ResNet-18 rows
    for method, row in SOLO_NAMES.items():
        assert REPRODUCTIONS[f"{method}_cifar/cifar10"].expected == c10[row], method
        assert REPRODUCTIONS[f"{method}_cifar/cifar100"].expected == c100[row], method
        assert REPRODUCTIONS[f"{method}_imagenet100"].expected == in100[row], method


@pytest.mark.skipif(not (SHARED / "seeds_spec.md").is_file(), reason="the spec (../shared/reference) is not beside this checkout")
def test_tian_numbers_equal_the_spec():
    spec = (SHARED / "seeds_spec.md").read_text()
    table6 = spec[spec.index("**Table 6"):spec.index("**Table 7")]
    for rho in ("0.3", "0.5"):
        line = next(ln for ln in table6.splitlines() if ln.startswith(f"| ρ={rho}"))
        cells = re.findall(r"(\d+\.\d+)±(\d+\.\d+)", line)
        for eps, (mu, sd) in zip(("0.0", "0.01", "0.1", "0.5"), cells):
            r = REPRODUCTIONS[f"tian2021_table6/rho{rho}_eps{eps}"]
            assert (r.expected, r.std) == (float(mu), float(sd))
    table8 = spec[spec.index("**Table 8"):spec.index("**Table 9")]
    line = next(ln for ln in table8.splitlines() if ln.startswith("| DirectPred (freq=5)"))
    stl, cifar = line.split("|")[2], line.split("|")[3]
    assert [float(x) for x in re.findall(r"(\d+\.\d+)±", stl)] == [
        REPRODUCTIONS[f"tian2021_table8_directpred_stl10/freq5_{e}ep"].expected for e in (100, 300, 500)]
    assert [float(x) for x in re.findall(r"(\d+\.\d+)±", cifar)] == [
        REPRODUCTIONS[f"tian2021_table8_directpred_cifar10/freq5_{e}ep"].expected for e in (100, 300, 500)]


def test_rows_change_only_what_the_table_varies():
    t3 = REPRODUCTIONS["tian2021_table3/linear_noema_nobias_sym"].config()
    assert t3.method_args["momentum"] == 0.0 and t3.method_args["symmetric_predictor"] is True
    assert t3.optim.weight_decay == 4e-4 and t3.optim.name == "sgd" and t3.optim.final_lr_ratio == 1.0
    assert REPRODUCTIONS["tian2021_table5/predwd_ema_bias"].config().method_args["weight_decay_on"] == "predictor"
    assert REPRODUCTIONS["tian2021_table5/nowd_ema_bias"].config().optim.weight_decay == 0.0
    t7 = REPRODUCTIONS["tian2021_table7/freq2_c0.05"].config()
    assert t7.method_args["eps"] == -0.05 and t7.method_args["eps_inside"] is True and t7.method_args["freq"] == 2
    c100 = REPRODUCTIONS["byol_cifar/cifar100"].config()
    assert c100.dataset == "cifar100" and c100.method_args["loss_scale"] == "byol" and c100.optim.lars_clip


def test_names_and_errors():
    with pytest.raises(ConfigError, match="choose one of: byol_cifar/cifar10, byol_cifar/cifar100"):
        reproduction("byol_cifar")
    with pytest.raises(ConfigError, match="unknown reproduction 'byol_cifar10'; valid choices: .*byol_imagenet100"):
        reproduction("byol_cifar10")


def test_score_reports_points_and_two_std():
    r = REPRODUCTIONS["tian2021_table6/rho0.3_eps0.1"]  # 77.86 ± 0.16
    s = score(r, 0.7750)
    assert s["measured"] == 77.5 and s["difference"] == pytest.approx(-0.36) and s["within_2_std"] is False
    assert score(r, 0.7770)["within_2_std"] is True
    none = Reproduction(**{**r.__dict__, "expected": None, "std": None})
    assert score(none, 0.5)["difference"] is None and score(r, None)["measured"] is None


def test_cli_list_dry_run_and_missing_data(tmp_path, capsys):
    assert main(["reproduce", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"tian2021_table6/rho0.3_eps0.1\s+Tian et al. 2021\s+Table 6\s+linear_top1\s+77.86 ± 0.16\s+stl10", out)
    assert main(["reproduce", "byol_cifar/cifar10", "--dry-run", f"data_root={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "expected online_probe_top1 = 92.58 %" in out and "7 of 7 missing" in out and "cifar-10-python.tar.gz" in out
    assert "method: byol" in out and "lars_clip: true" in out
    assert main(["reproduce", "byol_cifar/cifar10", f"data_root={tmp_path}", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cifar-10-batches-py/data_batch_1" in err and str(tmp_path) in err
    assert not (tmp_path / "run").exists()


def test_a_reproduction_writes_expected_measured_and_difference(tmp_path):
    write_stl10(tmp_path / "data", n=4)
    out = tmp_path / "run"
    summary = run("tian2021_table8_linear_stl10/100ep", [f"data_root={tmp_path / 'data'}", *FAST, "eval.linear=true",
                                                        "eval.linear_epochs=2"], out=str(out))
    saved = json.loads((out / "summary.json").read_text())
    rep = saved["reproduce"]
    assert rep == summary["reproduce"] and rep["expected"] == 75.06 and rep["expected_std"] == 0.52
    assert rep["measured"] == round(100 * saved["linear_top1"], 2)
    assert rep["difference"] == pytest.approx(rep["measured"] - 75.06)


def _data_for(dataset: str, root: Path, batch: int) -> list[str]:
    """Tiny files of ``dataset`` under ``root`` -- two pre-training batches of ``batch`` -- and the overrides to read them."""
    if dataset == "cifar10":
        write_cifar(root, CIFAR10, n=2 * batch // 5 + 1)  # five train batch files
    elif dataset == "cifar100":
        write_cifar(root, CIFAR100, n=2 * batch)
    elif dataset == "stl10":
        write_stl10(root, n=batch)  # pre-training reads train + unlabeled
    else:  # imagenet100 / imagenet: an ImageFolder of JPEGs, 2 * batch images over up to 100 of the classes
        classes = read_class_list(IMAGENET100_CLASSES)[: 2 * batch]
        write_imagefolder(root, classes, per_class=math.ceil(2 * batch / len(classes)), size=48)
        (root / "classes.txt").write_text("\n".join(classes))
        return [f"data_root={root}", f"classes_file={root / 'classes.txt'}"]
    return [f"data_root={root}"]


def _two_steps(recipe: str, tmp_path: Path) -> dict:
    from sslab.engine import train

    first = FIRST_ROWS[recipe]
    # W-MSE's whitening needs more samples than dimensions: its batch is one sub-batch of w_size
    batch = CONFIGS[recipe].method_args.get("w_size") or 4
    cfg = first.config(_data_for(CONFIGS[recipe].dataset, tmp_path / "data", batch) + FAST + [f"batch_size={batch}"])
    summary = train(cfg, tmp_path / "run")
    assert summary["steps"] == 2 and math.isfinite(summary["final_loss"]), recipe
    assert summary["backbone"] == cfg.backbone  # its real backbone (and heads: the recipe's method_args)
    return summary


SLOW_RECIPES = {n for n, cfg in CONFIGS.items() if cfg.dataset not in SMALL or cfg.method == "w_mse"}


@pytest.mark.parametrize("recipe", [n for n, _ in RECIPES if n not in SLOW_RECIPES])
def test_recipe_trains_two_steps_on_tiny_on_disk_data(recipe, tmp_path):
    _two_steps(recipe, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(SLOW_RECIPES))
def test_large_recipe_trains_two_steps_on_tiny_on_disk_data(recipe, tmp_path):
    _two_steps(recipe, tmp_path)


def test_imagenet100_reads_the_cmc_class_list_and_names_missing_folders(tmp_path):
    classes = read_class_list(IMAGENET100_CLASSES)
    assert len(classes) == 100 == len(set(classes)) and all(re.fullmatch(r"n\d{8}", c) for c in classes)
    assert classes[:2] == ["n02869837", "n01749939"] and classes[-1] == "n02090622"  # solo-learn's order
    write_imagefolder(tmp_path, classes[:99] + ["n99999999"], per_class=1, size=16)
    assert missing_files("imagenet100", tmp_path) == ["train/n02090622/", "val/n02090622/"]
    with pytest.raises(DataError, match="n02090622"):
        load_split("imagenet100", "train", tmp_path)
    write_imagefolder(tmp_path, classes[99:], per_class=1, size=16)
    data = load_split("imagenet100", "train", tmp_path)
    assert data.classes == classes and len(data) == 100  # the extra folder n99999999 is not a class


def _section(text: str, marks: tuple[str, str]) -> str:
    return text[text.index(marks[0]):text.index(marks[1]) + len(marks[1])]


def test_docs_reproduce_tables_are_generated_from_the_recipes():
    doc = (ROOT / "docs" / "reproduce.md").read_text()
    assert _section(doc, REPRODUCE_TABLE) == reproductions_table(), "run: python -c 'from sslab.reproduce import ...'"
    assert _section(doc, SETTINGS_TABLE) == settings_table()


LIGHTLY_NAMES = {"barlow_twins": "BarlowTwins", "byol": "BYOL", "dcl": "DCL", "dino": "DINO", "moco_v2": "MoCo",
                 "nnclr": "NNCLR", "simclr": "SimCLR", "simsiam": "SimSiam", "swav": "SwaV"}


@pytest.mark.skipif(not (SHARED / "peers.md").is_file(), reason="the peer survey (../shared/reference) is not here")
def test_lightly_numbers_equal_the_peer_survey():
    table = {r[0]: r for r in _published("### B.7")}
    for method, row in LIGHTLY_NAMES.items():
        cells = table[row]
        published = [100 * float(cells[i].rstrip("*")) for i in (1, 4, 7)]
        rows = ("bs128_200ep", "bs512_200ep", "bs512_800ep")
        ours = [REPRODUCTIONS[f"lightly2023_cifar10_{method}/{r}"].expected for r in rows]
        assert ours == pytest.approx(published), method
        if cells[4].endswith("*"):  # Lightly's (*): the memory bank grown to 8192 for batch 512
            assert REPRODUCTIONS[f"lightly2023_cifar10_{method}/bs512_200ep"].config().method_args["queue_size"] == 8192
