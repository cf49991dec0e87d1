"""Command line: ``sslab train | eval | analyze | export | theory | reproduce | list``.

Errors are one line on stderr with exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

USAGE_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError)


def one_line(e: BaseException) -> str:
    """The message of ``e`` as one line: an OSError's strerror and file (a full disk, a read-only folder),
    and for an error re-raised from a DataLoader worker ("Caught DataError in DataLoader worker process 0.
    Original Traceback ...") the original error's own line, which names the file."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if lines[0].startswith("Caught ") and "Original Traceback" in str(e):
        last = lines[-1]
        return last.split(": ", 1)[1] if ": " in last and "Error" in last.split(": ", 1)[0] else last
    return lines[0]


def _default_out(method: str, dataset: str) -> Path:
    return Path("runs") / f"{method}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_train(args: argparse.Namespace) -> int:
    from .config import dump, resolve

    target = args.target
    overrides = list(args.overrides)
    if target is not None and "=" in target:  # `sslab train epochs=5`: no recipe, only overrides
        overrides.insert(0, target)
        target = None
    if args.resume:
        if args.out is None:
            raise ValueError("--resume needs --out RUN_DIR (the folder of the run to continue)")
        saved = Path(args.out) / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"cannot resume: {saved} not found")
        cfg = resolve(str(saved), overrides)
    else:
        cfg = resolve(target, overrides)
    if args.print_config:  # the resolved, checked config as config.yaml would hold it; nothing is written
        print(dump(cfg), end="")
        return 0
    from .engine import train

    out = Path(args.out) if args.out else _default_out(cfg.method, cfg.dataset)
    summary = train(cfg, out, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_root=args.data_root,
                                 knn=args.knn or not args.linear, linear=args.linear)
    print(json.dumps(result, indent=2))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis import analyze

    command = " ".join(["sslab analyze", *args.runs] + (["--out", args.out] if args.out else []))
    report = analyze(args.runs, args.out, command=command)
    print(f"sslab: report written to {report} (and report.html, analysis.json, the PNGs beside it)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_run

    out = export_run(args.run, args.out, args.format)
    print(f"sslab: backbone written to {out} (and {out.name}.json, how to load it)")
    return 0


def cmd_theory(args: argparse.Namespace) -> int:
    from .theory.lab import EXPERIMENTS, parse_options, run_experiment, summary_lines

    if args.name == "list":
        for e in EXPERIMENTS.values():
            print(f"{e.name:<12} {e.summary}")
        return 0
    embeddings = None
    if args.name == "duality":  # theory reads no run folders: analysis reads the run's embeddings, theory gets the matrix
        options = parse_options(args.name, args.options)
        if options["run"] and not options["embeddings"]:  # an embeddings file wins, as it always has
            from .analysis.run import probe_embedding_matrix

            embeddings = probe_embedding_matrix(options["run"])
    record = run_experiment(args.name, args.options, args.out, embeddings=embeddings)
    print(json.dumps(record, indent=2) if args.json else "\n".join(summary_lines(record)))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import listing, run

    if args.name == "list":
        for line in listing():
            print(line)
        return 0
    if args.name == "claims":
        from .claims import run_study

        if args.overrides:
            raise ValueError(f"sslab reproduce claims takes no key=value options, got '{args.overrides[0]}'; "
                             "valid flags: --quick --out --report --jobs --seeds --arms --predictions")
        out = args.out or ("runs/claims-quick" if args.quick else "runs/claims")
        result = run_study(out, quick=args.quick, report=args.report, jobs=args.jobs,
                           seeds=_ints(args.seeds), arms=args.arms.split(",") if args.arms else None,
                           predictions=args.predictions)
        print(result["report"])
        return 0
    summary = run(args.name, list(args.overrides), out=args.out, dry_run=args.dry_run, resume=args.resume,
                  overwrite=args.overwrite)
    if summary is not None:
        print(json.dumps(summary["reproduce"], indent=2))
    return 0


def _ints(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds wants comma-separated integers, e.g. 0,1,2; got '{text}'") from None


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from .bench.run import DEFAULT_METHODS, run_bench
    from .engine.train import _quiet_lightning
    from .methods import method_spec

    device = torch.device(args.device) if args.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA device here; valid choices: cpu")
    gpu = device.type == "cuda"
    methods = args.methods or list(DEFAULT_METHODS)
    for m in methods:
        method_spec(m)  # one-line error for an unknown name
    _quiet_lightning()
    workers = args.workers if args.workers is not None else sorted({0, 1, 2, min(8, os.cpu_count() or 1)})
    run_bench(methods, args.sizes or ([32, 96, 224] if gpu else [28]), args.batch or [256 if gpu else 128],
              args.precision or (["bf16-mixed"] if gpu else ["32-true"]), device, steps=args.steps, warmup=args.warmup,
              workers=workers or None, diagnostics=not args.no_diagnostics, out=args.out,
              echo=lambda text: print(text, flush=True), overrides=tuple(args.overrides))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import listing

    for line in listing(args.what):
        print(line)
    return 0


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose ``epilog`` may be a function, called only when the help is printed (train's list of
    config keys reads the config's declarations, which a plain ``sslab list`` need not import)."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


def config_keys_help() -> str:
    """The config keys ``sslab train --help`` lists: each with its default, its help and its range or choices."""
    from .config import Config
    from .settings import describe

    return "\n".join(["config keys (key=default; * marks those a --resume may change); a key that is an option of the "
                      "chosen method (temperature=0.2) goes to method_args:", *describe(Config)])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sslab", description="Self-supervised representation learning: train, evaluate, explain.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train a method (default: BYOL on mnist5k)", epilog=config_keys_help,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("target", nargs="?", help="recipe name or config.yaml (optional)")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. method=simclr epochs=10 optim.lr=0.1")
    t.add_argument("--out", help="run folder (default runs/<method>-<dataset>-<time>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --out (default: refuse)")
    t.add_argument("--print-config", action="store_true",
                   help="print the resolved, checked config (YAML, as the run's config.yaml) and exit; writes nothing")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="kNN / linear evaluation of a checkpoint's backbone")
    e.add_argument("checkpoint")
    e.add_argument("--dataset", help="evaluate on another dataset of the same image size and channels")
    e.add_argument("--data-root", help="folder of the dataset files")
    e.add_argument("--knn", action="store_true", help="weighted kNN (default when neither is given)")
    e.add_argument("--linear", action="store_true", help="offline linear probe")
    e.set_defaults(func=cmd_eval)
    a = sub.add_parser("analyze", help="report with plots on one run, or a comparison of several")
    a.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_CHECKPOINT", help="run folders (or their checkpoints)")
    a.add_argument("--out", help="report folder (default: <run>/analysis, or analysis-<a>-vs-<b> for several runs)")
    a.set_defaults(func=cmd_analyze)
    x = sub.add_parser("export", help="a run's backbone as a torchvision / timm state_dict")
    x.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT")
    x.add_argument("--out", required=True, help="the .pt file to write")
    x.add_argument("--format", choices=["torchvision", "timm"], help="default: torchvision for ResNets, timm for ViTs")
    x.set_defaults(func=cmd_export)
    th = sub.add_parser("theory", help="the papers' linear-network theory: `sslab theory list`, `sslab theory NAME`")
    th.add_argument("name", help="experiment name, or 'list'")
    th.add_argument("options", nargs="*", help="key=value options, e.g. eta=0.1 alpha_p=[0.5,1,2]")
    th.add_argument("--out", help="folder for the figures and NAME.json (default theory/NAME)")
    th.add_argument("--json", action="store_true", help="print the full JSON instead of the summary")
    th.set_defaults(func=cmd_theory)
    r = sub.add_parser("reproduce", help="the papers' experiments with their published numbers: `sslab reproduce list`")
    r.add_argument("name", help="reproduction name (recipe or recipe/row), 'list', or 'claims' (the claims study)")
    r.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data_root=/data devices=8")
    r.add_argument("--out", help="run folder (default runs/reproduce/<name>; claims: runs/claims, --quick: runs/claims-quick)")
    r.add_argument("--resume", action="store_true", help="continue the reproduction's run from its last checkpoint")
    r.add_argument("--overwrite", action="store_true", help="replace the run already in its folder (default: refuse)")
    r.add_argument("--dry-run", action="store_true", help="print the resolved config, the expected number and the data it needs")
    r.add_argument("--quick", action="store_true", help="claims: one seed of a few arms, 1 epoch (under 3 minutes)")
    r.add_argument("--report", help="claims: the markdown report (default docs/claims.md; <out>/claims.md with --quick)")
    r.add_argument("--jobs", type=int, help="claims: runs in parallel (default: min(2, cores))")
    r.add_argument("--seeds", help="claims: comma-separated seeds (default 0,1,2; --quick: 0)")
    r.add_argument("--arms", help="claims: comma-separated arms (default: all; --quick: a few)")
    r.add_argument("--predictions", help="claims: the registered predictions (default: sslab's own predictions.yaml)")
    r.set_defaults(func=cmd_reproduce)
    b = sub.add_parser("bench", help="training-step speed, floor ratio, phases and syncs on synthetic data (JSON out)")
    b.add_argument("overrides", nargs="*", help="config key=value for every case, e.g. compile=true channels_last=false")
    b.add_argument("--methods", nargs="+", help="default: simclr byol simsiam vicreg barlow_twins directpred directcopy")
    b.add_argument("--sizes", nargs="+", type=int, help="image sides, from 28 32 96 224 (default: 28 on CPU, 32 96 224 on GPU)")
    b.add_argument("--batch", nargs="+", type=int, help="batch sizes (default: 128 on CPU, 256 on GPU)")
    b.add_argument("--precision", nargs="+", help="32-true | bf16-mixed | 16-mixed (default: 32-true on CPU, bf16-mixed on GPU)")
    b.add_argument("--steps", type=int, default=50, help="timed steps per measurement (default 50)")
    b.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    b.add_argument("--workers", nargs="*", type=int, help="ImageFolder loader worker counts (default 0 1 2 up to 8; none: skip)")
    b.add_argument("--no-diagnostics", action="store_true", help="skip timing the diagnostics")
    b.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    b.add_argument("--out", default="runs/bench.json", help="JSON file (default runs/bench.json)")
    b.set_defaults(func=cmd_bench)
    ls = sub.add_parser("list", help="list methods, datasets, backbones or recipes")
    ls.add_argument("what", nargs="?", default="all", choices=["all", "methods", "datasets", "backbones", "recipes"])
    ls.set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    # key=value after a flag (`sslab reproduce NAME --dry-run data_root=...`) still counts as an override
    rest = next((k for k in ("overrides", "options") if hasattr(args, k)), None)
    if extra and rest and all("=" in e and not e.startswith("-") for e in extra):
        setattr(args, rest, [*getattr(args, rest), *extra])
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    from .io import RunStopped

    try:
        return args.func(args)
    except RunStopped as e:
        from .engine.train import launch_rank

        if launch_rank() != 0:  # a DDP launcher's child: a non-zero exit would make the launcher kill rank 0
            return 0
        print(f"sslab: {e}", file=sys.stderr)
        return e.code
    except USAGE_ERRORS as e:
        print(f"sslab: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C during training, or one before it started
        print("sslab: interrupted (a run that had written a checkpoint continues with --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sslab list | head`: the reader left; stop quietly (Python docs' recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
