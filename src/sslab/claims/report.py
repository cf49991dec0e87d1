"""The claims study's report: ``docs/claims.md`` (generated from the predictions file), its plots and JSON."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

from ..figures import panels, save
from ..io import atomic_write_text
from . import stats
from .judge import values_of
from .predictions import Registry
from .study import ARMS, HOLDOUT

EXPLANATIONS = Path(__file__).with_name("explanations.yaml")
LIMIT = 4.0  # the forest plot's x range, in SESOI units: longer intervals end in an arrowhead
COLOURS = {stats.SUPPORTED: "tab:green", stats.CONTRADICTED: "tab:red", stats.UNDERPOWERED: "tab:orange",
           stats.NOT_TESTED: "tab:gray"}


def explanations(path: Path = EXPLANATIONS) -> dict[tuple[str, str], str]:
    """``(claim id, verdict) -> text`` written after reading the runs; shown only while the verdict is that one,
    so a rerun that changes a verdict drops the text rather than contradicting it."""
    if not path.is_file():
        return {}
    raw = yaml.safe_load(path.read_text()) or {}
    return {(e["claim"], e["verdict"]): str(e["text"]).strip() for e in raw.get("explanations", [])}


def cell(text: str) -> str:
    """Text safe inside a markdown table cell (a ``|`` would split the row)."""
    return str(text).replace("|", "\\|")


def _iv(iv: dict | None, digits: int = 3) -> str:
    if not iv:
        return "-"
    return f"{iv['mean']:+.{digits}f} [{iv['low']:+.{digits}f}, {iv['high']:+.{digits}f}]"


def _contrast(r: dict[str, Any]) -> str:
    if r["kind"] in ("collapse", "no_collapse"):
        what = "collapses" if r["kind"] == "collapse" else "does not collapse"
        return f"{r['arm']} {what} ({r['collapse']}; reference {r['reference']})"
    if r["kind"] == "correlation":
        return "Spearman ρ across arms, per seed (sign-adjusted)"
    terms = " ".join(f"{'+' if w > 0 else '−'} {'' if abs(w) == 1 else f'{abs(w):g}·'}{a}"
                     for a, w in r["contrast"].items()).lstrip("+ ")
    off = f" − {r['offset']:g}" if r["offset"] > 0 else f" + {-r['offset']:g}" if r["offset"] < 0 else ""
    rel = {"effect": "> 0", "equivalence": f"within ±{r['sesoi']:g}", "noninferiority": f"> −{r['sesoi']:g}"}[r["kind"]]
    return f"{r['metric']}: {terms}{off} {rel}"


def _p(r: dict[str, Any]) -> str:
    return f"{r['p']:.3g} ({r['p_holm']:.3g})" if "p_holm" in r else "-"


def prediction_rows(claim: dict[str, Any]) -> list[str]:
    lines = ["| prediction | basis | predicted | SESOI | mean [95 % CI] (per seed) | p (Holm) | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in claim["predictions"]:
        if r.get("criteria"):
            iv_cell = "<br>".join(f"{c['text']}: {_iv(c['interval'])} {c['verdict']}" for c in r["criteria"])
        else:
            iv = r.get("interval")
            seeds = ", ".join(f"{v:+.3f}" for v in iv["by_seed"].values()) if iv else ""
            iv_cell = f"{_iv(iv)}" + (f" ({seeds})" if seeds else "")
        verdict = f"**{r['verdict']}**" + (f": {r['reason']}" if r.get("reason") else "")
        sesoi = "threshold" if r["kind"] in ("collapse", "no_collapse") else f"{r['sesoi']:g}"
        lines.append(f"| {r['id']} | {r['basis']} | {cell(_contrast(r))} | {sesoi} | {cell(iv_cell)} | {_p(r)} | "
                     f"{cell(verdict)} |")
    notes = [f"- *{r['id']}*: SESOI {r['sesoi']:g} -- {r['sesoi_why']}" + (f" ({r['note']})" if r["note"] else "")
             for r in claim["predictions"] if r["sesoi_why"] or r["note"]]
    return lines + ([""] + notes if notes else [])


def _cell(vals, arm: str, metric: str, digits: int = 3) -> str:
    return stats.mean_std(vals.get(arm, {}).get(metric, {}).values(), digits)


def arm_rows(vals, arms: list[str], tuned: dict[str, dict]) -> list[str]:
    lines = ["| arm | setting | epochs | runs | kNN | random encoder | center norm | eff. rank | RankMe |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for a in arms:
        arm = ARMS[a]
        if arm.timing or arm.theory:
            continue
        own = {**arm.set, **tuned.get(a, {})}
        changes = " ".join(f"{k}={v}" for k, v in own.items() if k not in ("optim.exclude_bias_norm",))
        setting = f"`{arm.method}` {arm.block}" + (f" {changes}" if changes else "") + (f"; {arm.note}" if arm.note else "")
        n = len(vals.get(a, {}).get("knn", {}))
        lines.append(f"| {a} | {setting} | {arm.epochs} | {n} | {_cell(vals, a, 'knn')} | "
                     f"{_cell(vals, a, 'random_encoder')} | {_cell(vals, a, 'center_norm', 2)} | "
                     f"{_cell(vals, a, 'effective_rank', 1)} | {_cell(vals, a, 'rankme', 1)} |")
    return lines


def timing_rows(vals, arms: list[str]) -> list[str]:
    timing = [a for a in arms if ARMS[a].timing]
    if not timing:
        return []
    lines = ["| arm | D | predictor ms/step | whole step ms | fraction of the step |", "| --- | --- | --- | --- | --- |"]
    for a in timing:
        lines.append(f"| {a} | {ARMS[a].set['proj_dim']} | {_cell(vals, a, 'predictor_ms')} | "
                     f"{_cell(vals, a, 'step_ms', 1)} | {_cell(vals, a, 'predictor_fraction')} |")
    return lines


def theory_rows(vals, arms: list[str]) -> list[str]:
    theory = [a for a in arms if ARMS[a].theory]
    if not theory:
        return []
    lines = ["| arm | `sslab theory` | runs | metrics (mean ± std over seeds) |", "| --- | --- | --- | --- |"]
    for a in theory:
        metrics = "; ".join(f"{k} {_cell(vals, a, k)}" for k in vals.get(a, {}))
        lines.append(f"| {a} | {ARMS[a].theory}; {ARMS[a].note} | {len(next(iter(vals.get(a, {}).values()), {}))} | "
                     f"{metrics} |")
    return lines


def control_rows(results: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, dict] = {}
    for c in results:
        for r in c["predictions"]:
            for ctl in r["controls"]:
                seen.setdefault(ctl["arm"], ctl)
    lines = ["| reference | runs | kNN − random encoder, mean [95 % CI] | passes |", "| --- | --- | --- | --- |"]
    for a, ctl in seen.items():
        iv = f"{ctl['mean']:+.3f} [{ctl['low']:+.3f}, {ctl['high']:+.3f}]" if "mean" in ctl else "-"
        lines.append(f"| {a} | {ctl['n']} | {iv} | {'yes' if ctl['passed'] else '**no**'} |")
    return lines


def plot_forest(results: list[dict[str, Any]], out: Path) -> str:
    """Every prediction's 95 % interval (collapse criteria one row each) in units of its SESOI (threshold tests:
    in units of their own largest |end|), against the ±SESOI band, coloured by verdict."""
    rows = []
    for c in results:
        for r in c["predictions"]:
            items = [(f"{r['id']}: {x['text']}", x["interval"], 0.0) for x in r.get("criteria", [])] or \
                [(r["id"], r.get("interval"), r["sesoi"])]
            rows += [(label, iv, sesoi, r["verdict"]) for label, iv, sesoi in items]
    fig, (ax,) = panels(1, 7.5, max(3.0, 0.21 * len(rows) + 1))
    for i, (_, iv, sesoi, verdict) in enumerate(rows):
        if not iv:
            ax.plot([0], [i], marker="x", color=COLOURS[verdict])
            continue
        scale = sesoi if sesoi > 0 else max(abs(iv["low"]), abs(iv["high"]), 1e-12)
        lo, hi, mean = (min(max(v / scale, -LIMIT), LIMIT) for v in (iv["low"], iv["high"], iv["mean"]))
        ax.plot([lo, hi], [i, i], color=COLOURS[verdict], lw=2)
        ax.plot([mean], [i], "o", color=COLOURS[verdict], ms=3)
        for end, marker in ((iv["high"] / scale > LIMIT, ">"), (iv["low"] / scale < -LIMIT, "<")):
            if end:  # beyond the axis: an arrowhead at the edge
                ax.plot([LIMIT if marker == ">" else -LIMIT], [i], marker, color=COLOURS[verdict], ms=5)
        if sesoi > 0:
            ax.plot([-1, 1], [i, i], color="k", alpha=0.15, lw=6, solid_capstyle="butt")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(-LIMIT - 0.3, LIMIT + 0.3)
    ax.set_xlabel("predicted direction → (interval / SESOI; grey band ±SESOI; threshold tests / their own extent;"
                  " ▶ beyond the axis)")
    for v, colour in COLOURS.items():
        ax.plot([], [], color=colour, lw=2, label=v)
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, out, "forest.png")


def _curves(records: list[dict], arm: str, key: str) -> tuple[list[int], list[float]]:
    by_step: dict[int, list[float]] = defaultdict(list)
    for r in records:
        if r.get("arm") == arm and not r.get("failed"):
            for t in r.get("trace", []):
                if key in t:
                    by_step[int(t["step"])].append(float(t[key]))
    steps = sorted(by_step)
    return steps, [sum(by_step[s]) / len(by_step[s]) for s in steps]


def plot_predictor(records: list[dict], out: Path) -> str:
    fig, axes = panels(2)
    arms = [a for a in ARMS if ARMS[a].block == "tian"]
    for ax, key, label in zip(axes, ("pred_alignment_live", "pred_commutator"),
                              ("mean cos(u_j, Wp u_j) over the live modes", "‖[F̂, Wp]‖ / (‖F̂‖‖Wp‖)")):
        for a in arms:
            steps, ys = _curves(records, a, key)
            if steps:
                ax.plot(steps, ys, label=a, lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
    axes[0].set_title("Tian et al. Thm 3: alignment (mean over seeds)")
    axes[1].set_title("the relative commutator")
    if axes[1].get_lines():
        axes[1].legend(fontsize=6)
    return save(fig, out, "predictor.png")


def plot_center(records: list[dict], out: Path) -> str:
    fig, axes = panels(2, 5.2, 4.0)
    runs = [r for r in records if r.get("kind") == "run" and "center_norm" in r.get("metrics", {})]
    if runs:
        sc = axes[0].scatter([r["metrics"]["center_norm"] for r in runs], [r["metrics"]["aug_mean_norm"] for r in runs],
                             c=[r["metrics"].get("knn_gain", 0.0) for r in runs], cmap="coolwarm_r", vmin=-0.2, vmax=0.2)
        fig.colorbar(sc, ax=axes[0], label="kNN − random encoder")
        early = [r for r in runs if "center_early" in r["metrics"]]
        axes[1].scatter([r["metrics"]["center_early"] for r in early], [r["metrics"]["knn"] for r in early], s=10)
    axes[0].set_xlabel("center norm ‖E_x u‖ (end)")
    axes[0].set_ylabel("augmentation-mean norm E_x‖E_ω u‖ (end)")
    axes[0].set_title("every run (Jha et al.)")
    axes[1].set_xlabel("center norm a quarter into training")
    axes[1].set_ylabel("final kNN top-1")
    axes[1].set_title("does the early center predict the end?")
    return save(fig, out, "center.png")


def _verdict_anchor(c: dict[str, Any]) -> str:
    return f"{c['id']}-{c['verdict'].replace(' ', '-')}"


def write_report(registry: Registry, results: list[dict[str, Any]], records: list[dict], report: Path,
                 header: dict[str, Any]) -> Path:
    """``report`` (markdown) and, beside it in ``<stem>/``, the plots and ``claims.json``."""
    assets = report.parent / report.stem
    runs = [r for r in records if r.get("kind") != "tuning"]
    vals = values_of(runs)
    figures = {"forest": plot_forest(results, assets), "predictor": plot_predictor(runs, assets),
               "center": plot_center(runs, assets)}
    rel = assets.name
    why = explanations()
    counts = Counter(c["verdict"] for c in results)
    pcounts = Counter(r["verdict"] for c in results for r in c["predictions"])
    rounds = "; ".join(", ".join(map(str, r)) for r in header["rounds"])
    dim, comp = registry.collapse["dimensional"], registry.collapse["complete"]
    margin = float(registry.controls.get("margin", 0.05))
    lines = [
        "# The four papers' claims, tested on shifted_mnist",
        "",
        f"Generated by `{header['command']}` on {header['date']} at commit `{header['commit']}` from the predictions "
        f"registered on {header['registered']} in `src/sslab/claims/predictions.yaml` (SHA-256 "
        f"`{header['predictions_sha256'][:16]}…`): {header['runs']} training runs"
        + (f" ({header['failed']} failed)" if header.get("failed") else "")
        + f" in {header['minutes']:.0f} minutes of wall time ({header['invocations']} invocation(s); {header['jobs']} "
        f"runs at a time) on {header['cores']} CPU cores, torch {header['torch']}. Seeds by round: {rounds}; the "
        f"rounds stopped because {header['stopping']}. Do not edit by hand: edit the predictions file (before the "
        "runs) or `explanations.yaml` (after), and rerun the command (finished runs in its `--out` are kept).",
        "",
        f"**Claims:** {', '.join(f'{counts[v]} {v}' for v in stats.VERDICTS)}, of {len(results)}. "
        f"**Predictions:** {', '.join(f'{pcounts[v]} {v}' for v in stats.VERDICTS)}, of {sum(pcounts.values())}.",
        "",
        "**How to read a verdict** (`sslab.claims.stats`, `sslab.claims.judge`; the thresholds are the registered "
        "ones). Each prediction is a paired "
        "difference per seed (arms share each seed's initialisation, data order and views) with its 95 % Student-t "
        "interval (df = n − 1) and a smallest effect of interest (SESOI) fixed before the runs. *supported*: the "
        "interval excludes 0 in the predicted direction (equivalence: TOST at the SESOI, each side at 2.5 %; "
        "non-inferiority: the one-sided test at −SESOI), with the p-value Holm-adjusted within its claim; "
        "*contradicted*: the interval lies beyond "
        "the SESOI on the other side, or inside ±SESOI where an effect was predicted; *underpowered*: anything else "
        "(the interval is the result); *not tested here*: a positive control it leans on failed, or too few runs. "
        "A claim is contradicted if any of its predictions is, else underpowered if any is, else supported if any "
        f"is. **Collapse** comes in two registered kinds, both shown: *dimensional* (effective rank below "
        f"{dim['rank_fraction']:.2f} of the same-seed reference's and kNN below the same-seed random encoder) and "
        f"*complete* (center norm of the unit-normalised embeddings above {comp['center_norm_above']} and RankMe "
        f"below {comp['rankme_below']}); each criterion is a threshold test, a collapse needs all of them "
        "(intersection-union) and an escape one of them (Bonferroni). **Positive control:** a reference must beat "
        f"its same-seed random encoder by ≥ {100 * margin:g} kNN points with the paired interval above 0. "
        "Sequential seeds inflate the error rates a little; the rounds and the rule that added them are stated above.",
        "",
        "**Setup.** Every arm is a method's `shifted_mnist` recipe (`<method>_mnist5k@shifted_mnist`: 4,000 "
        "training digits at random position, scale and intensity on a 40×40 canvas, half-width ConvNet, batch 128) "
        f"with `{' '.join(header['settings'])}`, its block's length and the options in its row. kNN is top-1 "
        "(k = 20, T = 0.07) on the 1,000 test digits with the backbone's features; the diagnostics are the "
        "probe set's (512 training images, two fixed views) at the end of training, traced every 40 steps. Blocks: "
        "`recipe24` (24 epochs, the benchmark's length), `recipe8` (8 epochs: these references pass their control "
        "there), `tian` (Tian et al.'s SGD lr 0.03, momentum 0.9, η̄ = 4e-4, constant EMA 0.996, α_p = 1, the BYOL "
        "loss scale, a bias-free linear predictor; 24 epochs, 48 for Table 8's longer training), tuned arms (each "
        f"grid value trained once on the training split minus {HOLDOUT} held-out images and scored on those, never "
        "on the test split), timing arms and `sslab theory` arms (seeds draw the linear networks' initial weights).",
        "",
        "## Summary",
        "",
        "| claim | paper | the paper, quoted (abstracts) or as transcribed in seeds_spec.md | verdict | "
        "predictions: mean [95 % CI] |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in results:
        ivs = "<br>".join(f"{r['id']}: " + (_iv(r.get("interval")) if r.get("interval") else
                                             "; ".join(f"{x['text']} {_iv(x['interval'])}" for x in r.get("criteria", []))
                                             or "-") + f" *{r['verdict']}*" for r in c["predictions"])
        lines.append(f"| [{c['id']}](#{_verdict_anchor(c)}) | {cell(c['paper'])} ({cell(c['where'])}) | {cell(c['words'])} | "
                     f"**{c['verdict']}** | {cell(ivs)} |")
    lines += ["", f"![every prediction's interval against its SESOI]({rel}/{figures['forest']})", "",
              "## Positive controls", "", *control_rows(results), ""]
    tuned = header.get("tuned") or {}
    tuning = [r for r in records if r.get("kind") == "tuning"]
    if tuning:
        lines += ["## Tuning (held-out split)", "", "| run | held-out kNN | chosen |", "| --- | --- | --- |"]
        for r in tuning:
            arm, _, setting = r["arm"].partition("~")
            chosen = ",".join(f"{k}={v}" for k, v in tuned.get(arm, {}).items()) == setting
            knn = f"{r['metrics']['knn']:.3f}" if "metrics" in r else r.get("failed", "-")
            lines.append(f"| {r['arm']} | {knn} | {'**yes**' if chosen else ''} |")
        lines.append("")
    lines += ["## Claims", ""]
    for c in results:
        lines += [f"### {c['id']}: {c['verdict']}", "", f"**{c['paper']}** ({c['where']}): {c['words']}", "",
                  f"*Tested here as:* {c['summary']}", ""]
        lines += arm_rows(vals, [a for a in c["arms"] if a in ARMS], tuned) + [""]
        extra = timing_rows(vals, [a for a in c["arms"] if a in ARMS]) + theory_rows(vals, [a for a in c["arms"] if a in ARMS])
        lines += extra + ([""] if extra else [])
        lines += prediction_rows(c) + [""]
        if (c["id"], c["verdict"]) in why:
            lines += [why[(c["id"], c["verdict"])], ""]
        if c["id"] == "tian-alignment":
            lines += [f"![alignment and commutator]({rel}/{figures['predictor']})", ""]
        if c["id"] == "jha-early-center":
            lines += [f"![center vector of every run]({rel}/{figures['center']})", ""]
    untested = [(c["id"], r) for c in results for r in c["predictions"] if r["verdict"] == stats.NOT_TESTED]
    lines += ["## What could not be tested here, and why", ""]
    lines += [f"- **{cid} / {r['id']}**: {r.get('reason', '')}" for cid, r in untested] or ["- nothing"]
    if header.get("skipped"):
        lines += ["", "Arms not run, because every prediction that reads them leans on a positive control that failed "
                  f"in the first round: {', '.join(header['skipped'])}."]
    lines += ["", "## Pilots (before the seeds)", ""]
    lines += [f"- {p['what']}: {p['result']}" for p in registry.pilots]
    lines += ["", "## Identities (verified by unit tests, not by runs)", ""]
    lines += [f"- **{i['id']}** ({i['paper']}): {i['words']} -- identity, verified: {i['test']}" for i in registry.identities]
    failed = [r for r in records if r.get("failed")]
    if failed:
        lines += ["", "Failed runs (left out): " + "; ".join(f"{r['arm']} seed {r['seed']}: {r['failed']}" for r in failed)]
    assets.mkdir(parents=True, exist_ok=True)
    slim = [{k: v for k, v in r.items() if not (k == "trace" and r.get("kind") == "tuning")} for r in records]
    atomic_write_text(json.dumps({**header, "claims": results, "runs": slim}, indent=1) + "\n", assets / "claims.json")
    atomic_write_text("\n".join(lines) + "\n", report)
    return report
