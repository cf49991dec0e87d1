"""Each setting is declared once (``sslab.settings.setting`` in ``sslab.config``) and what sslab does with it is read
from that declaration: validation, the resume policy, the dotted keys of the sections, ``sslab train --help`` and
``--print-config``. Every recipe still resolves to a config that reads back as itself (a run's config.yaml)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from sslab.cli import main
from sslab.config import KEYS, RETIRED, Config, ConfigError, dump, recipe_names, resolve, to_dict
from sslab.engine.runfolder import RESUME_POLICY, RunFolderError, resume_changes
from sslab.settings import Check, declared, flatten, lookup, nest, sections

#: the order of config.yaml's top-level keys: a run folder written before this order changed would still resume,
#: but its config.yaml would no longer read like a new one's (kill_at_step and stop_at_step, retired, came before optim)
TOP_LEVEL = ("method", "dataset", "data_root", "classes_file", "predecode", "cache_dir", "decode", "verify_md5",
             "strict_counts", "backbone", "stem", "width", "backbone_args", "views", "image_size", "crop_scale", "view_args",
             "local_crops", "holdout", "epochs", "batch_size", "seed", "deterministic", "accelerator", "devices", "num_nodes",
             "strategy", "ddp", "sync_batchnorm", "precision", "tf32", "cudnn_benchmark", "compile", "compile_args",
             "checkpoint_every", "num_workers", "channels_last", "log_every_n_steps", "progress", "optim", "eval",
             "diagnostics", "method_args")

#: what a resume may change, as it was before the policy moved into the declarations (sslab.engine.runfolder's
#: RESUMABLE and FIXED): a change here is a change of what resuming a run means, so it must be made on purpose
FREE = {"progress", "num_workers", "log_every_n_steps", "checkpoint_every", "compile", "compile_args", "tf32",
        "cudnn_benchmark", "precision", "decode", "predecode", "cache_dir", "data_root", "deterministic", "accelerator",
        "channels_last", *(k for k in KEYS if k.split(".")[0] in ("eval", "diagnostics", "ddp"))} - {"eval.online_probe"}


def test_every_field_is_declared_with_a_help_and_a_policy():
    listed = list(declared(Config))
    assert [s.key for s in listed] == list(KEYS)
    assert len(KEYS) == len(set(KEYS)) > 60
    assert all(s.help and "\n" not in s.help for s in listed)
    assert {k for k, p in RESUME_POLICY.items() if p == "free"} == FREE
    assert {k for k, p in RESUME_POLICY.items() if p == "grow"} == {"epochs"}
    assert not set(RETIRED) & {f.name for f in dataclasses.fields(Config)}
    with pytest.raises(TypeError, match="Bare.x is not declared"):
        list(declared(dataclasses.make_dataclass("Bare", [("x", int, dataclasses.field(default=1))])))


@pytest.mark.parametrize("recipe", recipe_names())
def test_every_recipe_resolves_and_reads_back_as_itself(recipe, tmp_path):
    """What a run saves (config.yaml) resolves to the same config, so a resume starts from what the run ran; every
    value passes its declared check and every key is a declared one."""
    cfg = resolve(recipe)
    saved = tmp_path / "config.yaml"
    saved.write_text(dump(cfg))
    assert to_dict(resolve(str(saved))) == to_dict(cfg)
    assert tuple(to_dict(cfg)) == TOP_LEVEL
    flat = flatten(to_dict(cfg), Config)
    assert set(flat) == set(KEYS)
    for s in declared(Config):
        assert flat[s.key] == lookup(cfg, s.key)
        assert s.check is None or s.check.passes(lookup(cfg, s.key)), (s.key, lookup(cfg, s.key))


def _failing(check: Check, default) -> list:
    """Values of the setting's kind that its check refuses (at least one exists for every check)."""
    if isinstance(default, str):
        candidates = ["nope"]
    elif isinstance(default, list) or default is None and check.describe().startswith("["):
        candidates = [[0.5, 0.2], [2.0, 3.0]]
    else:
        candidates = [-(10**12), -1, 0, 10**12]
    return [v for v in candidates if not check.passes(v)]


@pytest.mark.parametrize("setting", [s for s in declared(Config) if s.check is not None], ids=lambda s: s.key)
def test_every_declared_check_is_applied_with_a_one_line_error(setting):
    bad = _failing(setting.check, setting.default)
    assert bad, f"{setting.key}: no value fails its check"
    with pytest.raises(ConfigError) as e:
        resolve(None, [f"{setting.key}={bad[0]}"])
    message = str(e.value)
    assert f"bad value for '{setting.key}'" in message and setting.check.describe() in message, message
    assert "\n" not in message


def test_the_choices_of_lower_modules_are_theirs():
    from sslab.data.decode import DECODE_CHOICES
    from sslab.optim import OPTIMIZERS

    checks = {s.key: s.check for s in declared(Config)}
    assert checks["optim.name"].describe() == ", ".join(OPTIMIZERS)
    assert checks["decode"].describe() == ", ".join(DECODE_CHOICES)


def test_sections_flatten_and_nest_back():
    tree = to_dict(Config())
    flat = flatten(tree, Config)
    assert flat["optim.lr"] == Config().optim.lr and flat["method_args"] == {} and "optim" not in flat
    assert nest(flat.items()) == tree
    assert set(sections(Config)) == {"ddp", "optim", "eval", "diagnostics"}
    assert nest([("a.b", 1), ("a", {"c": 2}), ("a.d", 3)]) == {"a": {"c": 2, "d": 3}}  # later pairs win, in order


def test_an_old_run_folders_config_with_the_retired_keys_still_resolves(tmp_path):
    """config.yaml of runs before the fault-injection options left Config held them (null, or a test's step)."""
    cfg = resolve(None, ["dataset=digits", "epochs=2"])
    old = to_dict(cfg)
    old = {**{k: v for k, v in old.items() if k != "optim"}, "kill_at_step": 30, "stop_at_step": None, "optim": old["optim"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    assert to_dict(resolve(str(tmp_path / "config.yaml"), ["eval.knn_k=5"])) == to_dict(resolve(
        None, ["dataset=digits", "epochs=2", "eval.knn_k=5"]))


def test_resume_changes_follow_the_declared_policy():
    started = resolve(None, ["dataset=digits", "epochs=4"])
    assert resume_changes(started, resolve(None, ["dataset=digits", "epochs=6", "eval.knn_k=3", "ddp.static_graph=true",
                                                   "num_workers=2"]), saved_epoch=3) == \
        ["ddp.static_graph", "epochs", "eval.knn_k", "num_workers"]
    assert resume_changes(started, resolve(None, ["dataset=digits", "epochs=2"]), saved_epoch=1) == ["epochs"]
    for change, refused in [(["epochs=2"], "epochs: 4 -> 2"), (["eval.online_probe=false"], "eval.online_probe"),
                            (["optim.lr=0.5"], "optim.lr"), (["temperature=0.3", "method=simclr"], "method"),
                            (["backbone_args={grid: 3}"], "backbone_args")]:
        with pytest.raises(RunFolderError, match="cannot resume with changed") as e:
            resume_changes(started, resolve(None, ["dataset=digits", "epochs=4", *change]), saved_epoch=2)
        assert refused in str(e.value)


def test_print_config_prints_the_resolved_config_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "simclr_mnist5k", "epochs=3", "temperature=0.3", "--print-config"]) == 0
    out = capsys.readouterr().out
    expected = resolve("simclr_mnist5k", ["epochs=3", "temperature=0.3"])
    assert out == dump(expected)
    assert yaml.safe_load(out)["method_args"]["temperature"] == 0.3
    assert main(["train", "method=vicreg", "--print-config"]) == 0  # overrides only, no recipe
    assert yaml.safe_load(capsys.readouterr().out) == to_dict(resolve(None, ["method=vicreg"]))
    assert os.listdir(tmp_path) == []


def test_print_config_of_a_run_to_resume_is_its_config_with_the_new_overrides(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump(resolve(None, ["dataset=digits", "epochs=2"])))
    before = sorted(Path(run).rglob("*"))
    assert main(["train", "--resume", "--out", str(run), "epochs=5", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == to_dict(resolve(None, ["dataset=digits", "epochs=5"]))
    assert sorted(Path(run).rglob("*")) == before


def test_train_help_lists_every_key_with_its_default_help_and_check(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--print-config" in text
    listing = text[text.index("config keys"):].splitlines()[1:]
    lines = {line[2:].split()[0]: line for line in listing}
    assert len(lines) == len(KEYS)
    for s in declared(Config):
        line = next((v for k, v in lines.items() if k.split("=")[0] == s.key), None)
        assert line is not None, s.key
        assert s.help in line and (s.check is None or f"[{s.check.describe()}]" in line), line
        assert line.startswith("*") == (s.resume != "fixed"), line
    assert "optim.lr=0.002" in lines and "epochs=15" in lines and "data_root=null" in lines
