"""``sslab analyze``: one report (``report.md`` and ``report.html``, the PNGs, ``analysis.json``) for one run or a comparison.

The report is a list of blocks (heading, paragraph, table, figure) rendered twice, to Markdown
and to a self-contained HTML page that links the same PNGs. ``analysis.json`` holds every number
the report prints, for scripts (and for the test that the report matches ``summary.json``).
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path

from ..io import atomic_write_text
from . import plots
from .explain import compare, config_differences, explain
from .run import Run, load_run

#: the final-diagnostics table: (key, label, what a healthy run shows; ``{center_threshold}`` is the first run's)
TABLE_ROWS = (
    ("verdict", "verdict", "healthy"),
    ("center_norm", "center norm ‖s‖ (plug-in)", "< {center_threshold} (complete collapse); ≈ 0 when spread evenly"),
    ("center_sq", "‖s‖² (unbiased)", "≈ 0"),
    ("aug_mean_norm", "augmentation-mean norm E‖μ(x)‖", "high: views agree"),
    ("aug_mean_sq", "E‖μ(x)‖² (mean positive cosine)", "close to 1"),
    ("aug_mean_spread", "E‖μ(x) − s‖²", "large: agreement that tells images apart"),
    ("total_spread", "total spread 1 − ‖s‖²", "close to 1"),
    ("effective_rank", "effective rank", "a good fraction of D"),
    ("rankme", "RankMe", "a good fraction of D"),
    ("alpha_req", "α-ReQ (spectral decay)", "≈ 1"),
    ("z_std", "std of z/‖z‖ per dimension", "1/√D"),
    ("alignment", "alignment E‖u − u'‖²", "small"),
    ("uniformity", "uniformity log E exp(−2‖u_i − u_j‖²)", "negative, lower = more uniform"),
    ("rows4_ratio", "Σ‖rows‖⁴ / (N²/M) (Lemma 3.4)", "single digits (1 … M)"),
    ("gram_offdiag_mean", "mean off-diagonal cosine", "≈ 0"),
    ("gram_offdiag_var_ratio", "M · var off-diagonal cosine", "≈ 1 for random directions"),
    ("pred_alignment", "predictor eigen-alignment (mean cos)", "→ 1 (Tian et al. Thm 3)"),
    ("pred_alignment_live", "eigen-alignment over the live modes (s_j/s_max > 1e-3)", "→ 1 (Tian et al. Thm 3)"),
    ("pred_commutator", "relative ‖[F̂, Wp]‖", "→ 0"),
    ("pred_asymmetry", "‖antisym(Wp)‖ / ‖Wp‖", "→ 0"),
)

CAPTIONS = {
    "training.png": "Left: the training loss by optimiser step. Right: kNN top-1 accuracy of the backbone on the test "
                    "split; the dashed line is the same network untrained -- a run below it has learnt nothing useful.",
    "center.png": "The center-vector picture of Jha et al. (2024), on a fixed probe set of training images. Left: the "
                  "norm of the mean unit-normalised embedding; it reaches 1 when every image gets the same embedding "
                  "(complete collapse). Middle: how well the two augmented views of an image agree. Right: the part of "
                  "that agreement that is not shared by all images -- it falls to 0 under collapse.",
    "rank.png": "How many directions the embeddings use. Left: effective rank (entropy of the singular values) and "
                "RankMe; 1 is a single direction. Right: the per-dimension standard deviation of the unit-normalised "
                "embeddings, 1/√D (dashed) when spread evenly, 0 when collapsed.",
    "spectra.png": "Eigenvalues of the probe embeddings' covariance, normalised to sum 1, at every logged step (colour "
                   "= step, black = last). A flat curve uses every dimension; one eigenvalue near 1 with the rest "
                   "falling away is a collapsed or nearly one-dimensional representation.",
    "duality.png": "The duality view of Garrido et al. (2023). Left: Σ‖rows‖⁴ of the embedding matrix between its "
                   "Lemma 3.4 bounds (1 = energy spread evenly over dimensions, M = all in one). Middle and right: "
                   "the off-diagonal cosines between different images -- mean 0 and M·variance 1 for random directions, "
                   "mean 1 and variance 0 under complete collapse.",
    "predictor.png": "Linear-predictor dynamics of Tian, Chen & Ganguli (2021). Left: for the leading eigenvectors u_j "
                     "of F̂, the cosine between u_j and Wp u_j (1 = Wp shares F̂'s eigenvectors, Theorem 3). Middle: "
                     "the relative commutator ‖[F̂, Wp]‖ and the antisymmetric part of Wp, both → 0. Right: at the last "
                     "step, s_j against p_j² (scaled by their largest values); Eqn 14's invariant parabola puts the "
                     "modes on the diagonal.",
}

SECTIONS = {
    "training.png": "Training: loss and kNN accuracy",
    "center.png": "Center vector and augmentation mean (Jha et al.)",
    "rank.png": "Rank",
    "spectra.png": "Eigenvalue spectra over training",
    "duality.png": "Sample- vs dimension-contrastive view (Garrido et al.)",
    "predictor.png": "Predictor and F̂ eigen-alignment (Tian et al.)",
}


def fmt(value) -> str:
    """A number as the report prints it (4 significant digits), strings as they are, missing as '–'."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _unique_names(paths: list[str | Path]) -> list[str]:
    names = [Path(p).resolve().name if Path(p).is_dir() else Path(p).resolve().parent.parent.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{n} ({i + 1})" for i, n in enumerate(names)]


def blocks_for(runs: list[Run], figures: list[str], command: str) -> list[tuple]:
    """The report as ``("h1"|"h2"|"p"|"table"|"img", ...)`` blocks."""
    title = runs[0].name if len(runs) == 1 else " vs ".join(r.name for r in runs)
    out: list[tuple] = [("h1", f"sslab analysis: {title}"),
                        ("p", f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M')}.")]
    diffs = config_differences(runs)
    head = ["run", "method", "differs by", "dataset", "backbone", "epochs", "steps", "kNN top-1", "linear top-1",
            "random encoder kNN", "final loss", "verdict"]
    rows = []
    for run, diff in zip(runs, diffs):
        s = run.summary
        rows.append([run.name, run.config.get("method"), ", ".join(f"{k}={v}" for k, v in diff.items()) or "–",
                     run.config.get("dataset"), s.get("backbone"), s.get("epochs"), run.final.get("step", s.get("steps")),
                     s.get("knn_top1"), s.get("linear_top1"), s.get("baselines", {}).get("random_init_knn_top1"),
                     s.get("final_loss"), run.final.get("verdict")])
    out += [("h2", "Runs"), ("table", head, rows), ("h2", "Verdict")]
    for run in runs:
        out += [("h3", f"{run.name}: {run.final.get('verdict', 'unknown')}"), ("p", explain(run))]
    if len(runs) > 1:
        out += [("h3", "Comparison"), ("p", compare(runs))]
    present = [(k, label, ref) for k, label, ref in TABLE_ROWS if any(k in r.final for r in runs)]
    thresholds = {"center_threshold": runs[0].center_threshold}
    table = [[label] + [r.final.get(k) for r in runs] + [ref.format(**thresholds)] for k, label, ref in present]
    n = runs[0].probe_size
    out += [("h2", "Final diagnostics"),
            ("p", f"On the fixed probe set ({n} training images, two augmented views each, the model in eval mode), "
                  "at the end of training (or at the checkpoint given). Formulas: docs/diagnostics.md."),
            ("table", ["diagnostic"] + [r.name for r in runs] + ["healthy run"], table)]
    for fig in figures:
        out += [("h2", SECTIONS[fig]), ("img", fig, SECTIONS[fig]), ("p", CAPTIONS[fig])]
    return out


def to_markdown(blocks: list[tuple]) -> str:
    lines: list[str] = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + rest[0], ""]
        elif kind == "p":
            lines += [rest[0], ""]
        elif kind == "table":
            head, rows = rest
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            lines += ["| " + " | ".join(fmt(c).replace("|", "\\|") for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{rest[1]}]({rest[0]})", ""]
    return "\n".join(lines)


def to_html(blocks: list[tuple]) -> str:
    body: list[str] = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(rest[0])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(rest[0])}</p>")
        elif kind == "table":
            head, rows = rest
            body.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in head) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows]
            body.append("</table>")
        elif kind == "img":
            body.append(f'<figure><img src="{html.escape(rest[0])}" alt="{html.escape(rest[1])}"></figure>')
    style = ("body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             "th{background:#f4f4f4}img{max-width:100%}p{max-width:60em}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>sslab analysis</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def analyze(paths: list[str | Path], out: str | Path | None = None, command: str | None = None) -> Path:
    """Write the report for run folders / checkpoints ``paths`` into ``out`` (default: ``<first run>/analysis``
    for one run, ``analysis-<names>`` for a comparison). Returns the path of ``report.md``."""
    if not paths:
        raise ValueError("sslab analyze needs at least one run folder or checkpoint")
    runs = [load_run(p, name) for p, name in zip(paths, _unique_names(paths))]
    if out is None:
        out = runs[0].folder / "analysis" if len(runs) == 1 else Path("analysis-" + "-vs-".join(r.name for r in runs))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = [name for fig in plots.FIGURES if (name := fig(runs, out)) is not None]
    blocks = blocks_for(runs, figures, command or "sslab analyze " + " ".join(str(p) for p in paths))
    atomic_write_text(to_markdown(blocks), out / "report.md")
    atomic_write_text(to_html(blocks), out / "report.html")
    numbers = {"runs": [{"name": r.name, "folder": str(r.folder), "checkpoint": str(r.checkpoint) if r.checkpoint else None,
                         "summary": r.summary, "final": r.final, "explanation": explain(r)} for r in runs],
               "figures": figures}
    if len(runs) > 1:
        numbers["comparison"] = compare(runs)
    atomic_write_text(json.dumps(numbers, indent=2) + "\n", out / "analysis.json")
    return out / "report.md"
