"""The claims study's verdicts, computed from the run records, and its report (markdown, plots, JSON)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..figures import panels, save
from ..io import atomic_write_text
from . import stats
from .study import (
    ARMS,
    BASELINES,
    COLLAPSE_CENTER,
    COLLAPSE_KNN_DROP,
    EXPLANATIONS,
    GROUPS,
    MATCH_MARGIN,
    Claim,
    Part,
)

Values = dict[str, dict[str, list[float]]]  # arm -> metric -> one value per run


def _runs(records: list[dict]) -> list[dict]:
    return [r for r in records if "metrics" in r and not r.get("failed")]


def random_encoder_by_seed(records: list[dict]) -> dict[int, float]:
    return {r["seed"]: r["baselines"]["random_init_knn_top1"] for r in _runs(records)
            if r.get("baselines", {}).get("random_init_knn_top1") is not None}


def group_of(record: dict, reference: dict[int, float]) -> str | None:
    """``healthy_runs`` (kNN at or above the random encoder of its seed), ``collapsed_runs`` (at least
    :data:`COLLAPSE_KNN_DROP` below it), or None (in between, or a timing arm)."""
    if record.get("timing") or "center_norm" not in record["metrics"]:
        return None
    ref = reference.get(record["seed"])
    if ref is None and reference:
        ref = sum(reference.values()) / len(reference)
    if ref is None:
        return None
    knn = record["metrics"]["knn"]
    return "healthy_runs" if knn >= ref else "collapsed_runs" if knn <= ref - COLLAPSE_KNN_DROP else None


def values(records: list[dict]) -> Values:
    """Every arm's metric values over its runs, with the pseudo-arms: the baselines and the groups."""
    out: Values = defaultdict(lambda: defaultdict(list))
    reference = random_encoder_by_seed(records)
    for r in _runs(records):
        for k, v in r["metrics"].items():
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                out[r["arm"]][k].append(float(v))
        for arm, key in BASELINES.items():
            if r.get("baselines", {}).get(key) is not None:
                out[arm]["knn"].append(float(r["baselines"][key]))
        group = group_of(r, reference)
        for k, v in r["metrics"].items():
            if group and v is not None and not math.isnan(float(v)):
                out[group][k].append(float(v))
    return out


def judge(part: Part, vals: Values) -> dict[str, Any]:
    """One prediction's difference ± SE and verdict (inconclusive, with the reason, where an arm has no data)."""
    missing = [a for a in part.weights if not vals.get(a, {}).get(part.metric)]
    if missing:
        return {"text": part.text, "difference": None, "se": None, "verdict": stats.INCONCLUSIVE,
                "reason": f"no {part.metric} for {', '.join(missing)}"}
    arms = {a: stats.summarize(vals[a][part.metric]) for a in part.weights}
    few = [a for a, s in arms.items() if s.n < 2]
    if few:  # one run has no spread: no standard error, no verdict
        return {"text": part.text, "difference": stats.contrast(arms, part.weights).value, "se": None,
                "verdict": stats.INCONCLUSIVE, "reason": f"one run only for {', '.join(few)}"}
    d = stats.contrast(arms, part.weights)
    if part.kind == "above":
        d = stats.Difference(d.value - part.threshold, d.se)
    elif part.kind == "below":
        d = stats.Difference(part.threshold - d.value, d.se)
    verdict = {"greater": stats.greater, "above": stats.greater, "below": stats.greater,
               "matches": lambda x: stats.matches(x, MATCH_MARGIN),
               "at_least": lambda x: stats.at_least(x, MATCH_MARGIN)}[part.kind](d)
    return {"text": part.text, "difference": d.value, "se": d.se, "verdict": verdict}


def evaluate(claim: Claim, vals: Values) -> dict[str, Any]:
    parts = [judge(p, vals) for p in claim.parts]
    verdict = stats.combine(p["verdict"] for p in parts)
    return {"id": claim.id, "paper": claim.paper, "claim": claim.claim, "source": claim.source, "plot": claim.plot,
            "verdict": verdict,
            "parts": parts, "arms": list(claim.shown_arms()), "explanation": EXPLANATIONS.get((claim.id, verdict), "")}


# --------------------------------------------------------------------------- report

def _cell(vals: Values, arm: str, metric: str, digits: int = 3) -> str:
    return stats.mean_std(vals.get(arm, {}).get(metric), digits)


def _arm_note(arm: str) -> str:
    if arm in BASELINES:
        return "kNN of raw pixels" if arm == "raw_pixels" else "the encoder at initialisation (byol arm's seeds)"
    if arm in GROUPS:
        return ("runs with kNN ≥ the random encoder's" if arm == "healthy_runs"
                else f"runs with kNN ≥ {COLLAPSE_KNN_DROP:.2f} below the random encoder's")
    a = ARMS[arm]
    changes = ", ".join(f"{k}={v}" for k, v in a.set.items())
    return "; ".join(x for x in (f"`{a.method}`" + (f" {changes}" if changes else ""), a.note) if x)


def arm_table(vals: Values, arms: list[str]) -> list[str]:
    """The arms' runs, kNN and diagnostics (mean ± std), with the ms/step column when a timing arm is among them."""
    timing = any(ARMS[a].timing for a in arms if a in ARMS)
    lines = ["| arm | setting | runs | kNN | center norm | aug-mean norm | eff. rank |" + (" ms/step |" if timing else ""),
             "| --- " * (7 + timing) + "|"]
    for arm in arms:
        n = max((len(v) for v in vals.get(arm, {}).values()), default=0)
        row = [arm, _arm_note(arm), str(n), _cell(vals, arm, "knn"), _cell(vals, arm, "center_norm", 2),
               _cell(vals, arm, "aug_mean_norm", 2), _cell(vals, arm, "effective_rank", 1)]
        if timing:
            row.append(_cell(vals, arm, "predictor_ms", 3))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def claim_section(result: dict[str, Any], vals: Values) -> list[str]:
    lines = [f"### {result['id']}: {result['verdict']}", "",
             f"**{result['paper']}** ({result['source']}): {result['claim']}", ""]
    lines += arm_table(vals, result["arms"])
    lines += ["", "| prediction | difference ± SE | verdict |", "| --- | --- | --- |"]
    for p in result["parts"]:
        diff = f"{p['difference']:+.3f} ± {p['se']:.3f}" if p["se"] is not None else "-"
        if p.get("reason"):
            diff = f"{diff if p['difference'] is not None else ''} ({p['reason']})".strip()
        lines.append(f"| {p['text']} | {diff} | {p['verdict']} |")
    if result["explanation"]:
        lines += ["", result["explanation"]]
    return lines + [""]


def plot_center(records: list[dict], out: Path) -> str:
    fig, (ax,) = panels(1, 5.6, 4.2)
    runs = [r for r in _runs(records) if "center_norm" in r["metrics"] and "aug_mean_norm" in r["metrics"]]
    reference = random_encoder_by_seed(records)
    for group, marker in (("healthy_runs", "o"), ("collapsed_runs", "x"), (None, "^")):
        sel = [r for r in runs if group_of(r, reference) == group]
        if sel:
            sc = ax.scatter([r["metrics"]["center_norm"] for r in sel], [r["metrics"]["aug_mean_norm"] for r in sel],
                            c=[r["metrics"]["knn"] for r in sel], cmap="viridis", vmin=0.3, vmax=0.9, marker=marker,
                            label={None: "in between"}.get(group, group))
    if runs:
        fig.colorbar(sc, ax=ax, label="kNN top-1")
        ax.legend(fontsize=8)
    ax.set_xlabel("center norm ‖E_x u‖")
    ax.set_ylabel("augmentation-mean norm E_x‖E_ω u‖")
    ax.set_title("every run of the study (Jha et al.)")
    return save(fig, out, "center.png")


def _curves(records: list[dict], arm: str, key: str) -> tuple[list[float], list[float]]:
    """Mean over an arm's seeds of a traced value, by step."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for r in _runs(records):
        if r["arm"] == arm:
            for t in r.get("trace", []):
                if key in t:
                    by_step[int(t["step"])].append(float(t[key]))
    steps = sorted(by_step)
    return steps, [sum(by_step[s]) / len(by_step[s]) for s in steps]


def plot_alignment(records: list[dict], out: Path) -> str:
    fig, (ax,) = panels(1)
    for arm in ("linear", "linear_symmetric", "linear_symmetric_no_ema"):
        steps, ys = _curves(records, arm, "pred_alignment")
        if steps:
            ax.plot(steps, ys, label=arm)
    ax.set_xlabel("step")
    ax.set_ylabel("mean cos(u_j, Wp u_j)")
    ax.set_title("predictor eigen-alignment with F̂ (Tian et al.)")
    ax.legend(fontsize=8)
    return save(fig, out, "alignment.png")


def plot_duality(records: list[dict], out: Path) -> str:
    fig, axes = panels(2)
    for ax, arm in zip(axes, ("simclr_tuned", "vicreg")):
        for key in ("l_c", "l_nc"):
            steps, ys = _curves(records, arm, key)
            if steps:
                ax.plot(steps, ys, label=key)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{arm}: L_c and L_nc (Garrido et al.)")
        ax.legend(fontsize=8)
    return save(fig, out, "duality.png")


def plot_knn(vals: Values, arms: list[str], out: Path) -> str:
    shown = [a for a in arms if vals.get(a, {}).get("knn")]
    fig, (ax,) = panels(1, 6.0, max(3.0, 0.22 * len(shown) + 1))
    summaries = [stats.summarize(vals[a]["knn"]) for a in shown]
    ax.barh(range(len(shown)), [s.mean for s in summaries], xerr=[s.std for s in summaries], color="tab:blue", alpha=0.7)
    ax.set_yticks(range(len(shown)), shown, fontsize=7)
    ax.invert_yaxis()
    for arm, style in (("random_encoder", "--"), ("raw_pixels", ":")):
        if vals.get(arm, {}).get("knn"):
            ax.axvline(stats.summarize(vals[arm]["knn"]).mean, color="k", ls=style, lw=1, label=arm)
    ax.set_xlabel("kNN top-1 (mean ± std over seeds)")
    ax.legend(fontsize=8)
    return save(fig, out, "knn.png")


def write_report(results: list[dict], records: list[dict], report: Path, header: dict[str, Any]) -> Path:
    """``report`` (markdown) and, beside it in ``<stem>/``, the plots and ``claims.json``."""
    assets = report.parent / report.stem
    vals = values(records)
    arms = [a for a in ARMS if a in vals] + [a for a in BASELINES if a in vals]
    figures = {"center.png": plot_center(records, assets), "alignment.png": plot_alignment(records, assets),
               "duality.png": plot_duality(records, assets), "knn.png": plot_knn(vals, arms, assets)}
    rel = assets.name
    counts = defaultdict(int)
    for r in results:
        counts[r["verdict"]] += 1
    lines = [
        "# The four papers' claims, tested on shifted_mnist",
        "",
        f"Generated by `{header['command']}` on {header['date']}: {header['runs']} training runs"
        + (f" ({header['failed']} failed)" if header.get("failed") else "") + f" in {header['minutes']:.0f} "
        f"minutes of wall time ({header['invocations']} invocation(s); {header['jobs']} runs at a time) on "
        f"{header['cores']} CPU cores, torch {header['torch']}. Do not edit by hand: rerun the command "
        "(finished runs in its `--out` folder are kept).",
        "",
        f"**Verdicts:** {counts[stats.HOLDS]} hold, {counts[stats.FAILS]} do not hold, "
        f"{counts[stats.INCONCLUSIVE]} inconclusive, of {len(results)} claims.",
        "",
        "**Setup.** Each arm is a method's `shifted_mnist` recipe (`<method>_mnist5k@shifted_mnist`) with "
        f"`{' '.join(header['settings'])}` and the options in its row; seeds {', '.join(map(str, header['seeds']))}. "
        "kNN is top-1 (k = 20, T = 0.07) on the test split with the backbone's features; the diagnostics are the "
        "probe set's at the end of training. Short runs (8 of the benchmark's 24 epochs) keep "
        "the whole study within its budget; they measure the early phase of training, where collapse decides itself.",
        "",
        "**Verdict rule** (sslab.claims.stats): mean ± std over seeds; a predicted difference *holds* when it exceeds "
        "twice its standard error (Welch), *does not hold* when the opposite difference does, and is *inconclusive* "
        f"otherwise. \"Matches\" is an equivalence: the interval difference ± 2 SE inside ±{MATCH_MARGIN} kNN "
        f"(holds) or wholly outside it (does not hold). \"Collapses completely\": center norm above {COLLAPSE_CENTER} "
        "by 2 SE. A claim with several predictions holds when all do. With 3 seeds the standard error rests on "
        "few degrees of freedom, so 2 SE is a lenient bar (an 82-88 % interval under Student's t with 2-4 "
        "degrees of freedom, not 95 %): "
        "read a verdict as what these runs show, not as a significance test.",
        "",
        "| claim | paper | claim in one sentence | verdict |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| [{r['id']}](#{r['id']}-{r['verdict'].replace(' ', '-')}) | {r['paper']} | {r['claim']} | "
              f"**{r['verdict']}** |" for r in results]
    lines += ["", "## Claims", ""]
    for r in results:
        lines += claim_section(r, vals)
        if r["plot"] in figures:
            lines += [f"![{r['id']}]({rel}/{figures[r['plot']]})", ""]
    lines += ["## Every arm", "", f"![kNN of every arm]({rel}/{figures['knn.png']})", "", *arm_table(vals, arms)]
    failed = [r for r in records if r.get("failed")]
    if failed:
        lines += ["", "Failed runs (left out of the tables): " + "; ".join(f"{r['arm']} seed {r['seed']}: {r['failed']}"
                                                                          for r in failed)]
    assets.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps({**header, "claims": results, "runs": records}, indent=1) + "\n", assets / "claims.json")
    atomic_write_text("\n".join(lines) + "\n", report)
    return report
