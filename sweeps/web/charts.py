"""The experiment page's charts as plotly.js figure JSON (data + layout), built from runs.

Plain dicts rather than plotly's Python figures: the page rebuilds them up to twice a second
while a sweep runs, and validating plotly objects costs more than the page's whole budget.
Only runs feed the charts (a few hundred at most), never samples. static/sweeps/charts.js
draws them with Plotly.react.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from sweeps.engine import formatting
from sweeps.engine.ranking import COST, LATENCY, SCORE, Objective, pareto_front
from sweeps.engine.space import get_path
from sweeps.models import Run

ACCENT = "#3451b2"
FRONT = "#d9480f"
LABEL_CHARS = 28  # category labels on axes; the hover shows more
PARALLEL_LABEL_CHARS = 14
MAX_AXIS_LABELS = 12
BANDS = [
    "#440154",
    "#482878",
    "#3e4989",
    "#31688e",
    "#26828e",
    "#1f9e89",
    "#35b779",
    "#6ece58",
    "#b5de2b",
    "#fde725",
]  # viridis, score 0 to 1 in tenths
MISSING = "(none)"
BASE_LAYOUT = {
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "margin": {"l": 56, "r": 16, "t": 16, "b": 56},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "#fff",
    "showlegend": False,
    "hovermode": "closest",
}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def short(value: Any, limit: int = LABEL_CHARS) -> str:
    text = MISSING if value is None else formatting.param(value)  # 0.1091, as the leaderboard shows it
    text = " ".join(text.split())  # prompts: newlines and runs of spaces would break the axis
    return text if len(text) <= limit else text[: limit - 1] + "…"


def categories(values: Sequence[Any], limit: int = LABEL_CHARS) -> dict[str, str]:
    """Each distinct value (by repr) -> a short, unique axis label, in a stable order."""
    distinct = {repr(v): v for v in values}
    labels: dict[str, str] = {}
    used: set[str] = set()
    for key in sorted(distinct):
        label, n = short(distinct[key], limit), 2
        while label in used:  # two long prompts that start alike
            label, n = f"{short(distinct[key], limit - 4)} #{n}", n + 1
        labels[key] = label
        used.add(label)
    return labels


Columns = dict[str, list[Any]]  # parameter -> its value in each run, in the runs' order


def hover_texts(runs: Sequence[Run], columns: Columns) -> list[str]:
    lines = [[f"{param} = {short(value, 60)}" for value in values] for param, values in columns.items()]
    return ["<br>".join([f"run {run.pk}", *(column[i] for column in lines)]) for i, run in enumerate(runs)]


def on_log_scale(param: str, values: Sequence[Any], log_params: Collection[str]) -> bool:
    """A parameter swept with `log: true`, whose values a log axis can show (all above 0)."""
    return param in log_params and all(is_number(v) and v > 0 for v in values)


def by_param(
    runs: Sequence[Run], columns: Columns, texts: list[str], log_params: Collection[str] = ()
) -> dict[str, Any]:
    """Score against each parameter, one subplot each: numbers as a scatter (on a log axis when
    swept with `log: true`), anything else (models, prompts) as a box per value with every run
    shown as a point."""
    scores = [run.score for run in runs]
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {**BASE_LAYOUT}
    for i, (param, values) in enumerate(columns.items(), start=1):
        axis = {"xaxis": f"x{i}", "yaxis": f"y{i}", "customdata": [run.pk for run in runs], "text": texts,
                "hovertemplate": "%{text}<br>score %{y:.3f}<extra></extra>"}  # fmt: skip
        if all(is_number(v) for v in values):
            data.append({"type": "scatter", "mode": "markers", "x": values, "y": scores,
                         "marker": {"color": ACCENT, "size": 8, "opacity": 0.7}, **axis})  # fmt: skip
            layout[f"xaxis{i}"] = {"title": {"text": param}, "zeroline": False,
                                   **({"type": "log"} if on_log_scale(param, values, log_params) else {})}  # fmt: skip
        else:
            labels = categories(values)
            data.append({"type": "box", "x": [labels[repr(v)] for v in values], "y": scores, "boxpoints": "all",
                         "jitter": 0.4, "pointpos": 0, "marker": {"color": ACCENT, "size": 6},
                         "line": {"color": ACCENT}, "fillcolor": "rgba(52,81,178,0.08)", **axis})  # fmt: skip
            layout[f"xaxis{i}"] = {"title": {"text": param}, "type": "category",
                                   "categoryorder": "array", "categoryarray": list(labels.values())}  # fmt: skip
        layout[f"yaxis{i}"] = {"title": {"text": "score"}, "range": [-0.05, 1.05]}
    per_row = min(len(columns), 2)
    rows = math.ceil(len(columns) / per_row) if columns else 1
    layout["grid"] = {"rows": rows, "columns": per_row, "pattern": "independent", "xgap": 0.12, "ygap": 0.35}
    layout["height"] = 90 + 260 * rows
    return {"data": data, "layout": layout}


def axis_heights(values: Sequence[Any], log: bool = False) -> tuple[list[float], list[tuple[float, str]]]:
    """Each value's height on its parallel axis (0 to 1), and the axis's labels as (height, text):
    numbers from their smallest to their largest, anything else one step per distinct value."""
    if all(is_number(v) for v in values):
        low, high = min(values), max(values)
        if high == low:
            return [0.5] * len(values), [(0.5, f"{low:g}")]
        scale = math.log if log else float  # a log-scale parameter is spread by its order of magnitude
        span = scale(high) - scale(low)
        ticks = [(0.0, f"{low:g}"), (1.0, f"{high:g}")]
        return [(scale(v) - scale(low)) / span for v in values], ticks
    labels = categories(values, PARALLEL_LABEL_CHARS)
    step = 1 / (len(labels) - 1) if len(labels) > 1 else 0
    height = {key: i * step if step else 0.5 for i, key in enumerate(labels)}
    every = math.ceil(len(labels) / MAX_AXIS_LABELS)  # a long list of prompts: label some of them
    return [height[repr(v)] for v in values], [(height[k], label) for k, label in list(labels.items())[::every]]


def parallel(
    runs: Sequence[Run], columns: Columns, texts: list[str], log_params: Collection[str] = ()
) -> dict[str, Any]:
    """One line per configuration across every varying parameter and the score, coloured by
    score. Drawn as plain SVG lines rather than plotly's parcoords: that one is WebGL, and
    without a GPU (headless browsers, many virtual machines) each draw blocks the page for
    seconds. One trace per score band keeps it to a handful of paths however many runs."""
    axes = [
        (param, *axis_heights(values, on_log_scale(param, values, log_params))) for param, values in columns.items()
    ]
    scores = [run.score or 0.0 for run in runs]  # only scored runs are drawn (see figures)
    axes.append(("score", scores, [(0.0, "0"), (0.5, "0.5"), (1.0, "1")]))
    bands: list[dict[str, list[Any]]] = [{"x": [], "y": [], "text": [], "customdata": []} for _ in BANDS]
    for i, (run, score) in enumerate(zip(runs, scores, strict=True)):
        band = bands[max(0, min(int(score * len(BANDS)), len(BANDS) - 1))]
        band["x"] += [*range(len(axes)), None]  # None: the line stops, the next run's begins
        band["y"] += [heights[i] for _, heights, _ in axes] + [None]
        band["text"] += [texts[i]] * len(axes) + [None]
        band["customdata"] += [run.pk] * len(axes) + [None]
    data = [
        {"type": "scatter", "mode": "lines+markers", "line": {"color": colour, "width": 1.5},
         "marker": {"color": colour, "size": 5}, "opacity": 0.7, "hovertemplate": "%{text}<extra></extra>", **band}
        for colour, band in zip(BANDS, bands, strict=True) if band["x"]
    ]  # fmt: skip
    labels = [
        {"x": i, "y": height, "text": text, "showarrow": False, "xanchor": "right", "xshift": -5,
         "font": {"size": 10}, "bgcolor": "rgba(255,255,255,0.75)"}
        for i, (_, _, ticks) in enumerate(axes) for height, text in ticks
    ]  # fmt: skip
    layout = {
        **BASE_LAYOUT, "height": 380, "margin": {"l": 24, "r": 24, "t": 16, "b": 48}, "annotations": labels,
        "xaxis": {"tickvals": list(range(len(axes))), "ticktext": [name for name, _, _ in axes], "zeroline": False,
                  "showgrid": True, "gridcolor": "#9aa3af", "range": [-0.75, len(axes) - 0.85]},
        "yaxis": {"visible": False, "range": [-0.06, 1.06]},
    }  # fmt: skip
    return {"data": data, "layout": layout}


@dataclass(frozen=True)
class ParetoAxis:
    """What the score-against-X chart puts on its x axis."""

    objective: Objective  # the engine's objective, so the front is the API's
    field: str  # the Run field it reads
    hover: str  # plotly hover template for x
    xaxis: dict[str, Any]


PARETO_AXES = {
    "cost": ParetoAxis(COST, "cost_usd", "cost $%{x:.5f}",
                       {"title": {"text": "cost (USD)"}, "rangemode": "tozero", "tickprefix": "$",
                        "exponentformat": "none"}),  # $0.00005, not 50µ
    "latency": ParetoAxis(LATENCY, "latency_ms", "latency %{x:.0f} ms",
                          {"title": {"text": "latency (ms)"}, "rangemode": "tozero", "ticksuffix": " ms"}),
}  # fmt: skip


def pareto(runs: Sequence[Run], texts: list[str], axis: str = "cost") -> dict[str, Any]:
    """Score against cost (or latency), the Pareto front of that pair (no run both better and
    cheaper, or faster) as a staircase. A run without the x value is not drawn nor on the front."""
    x = PARETO_AXES[axis]
    key = x.objective.key
    points = [{"score": run.score, key: getattr(run, x.field)} for run in runs]
    # Pruned runs are drawn but never on the front: their cost and score are of part of the rows.
    full = [i for i, run in enumerate(runs) if run.status != Run.Status.PRUNED]
    front = sorted((full[i] for i in pareto_front([points[i] for i in full], (SCORE, x.objective))),
                   key=lambda i: points[i][key])  # fmt: skip
    hover = "%{text}<br>score %{y:.3f}<br>" + x.hover + "<extra></extra>"
    data = [
        {"type": "scatter", "mode": "markers", "name": "runs", "x": [p[key] for p in points],
         "y": [p["score"] for p in points], "text": texts, "customdata": [run.pk for run in runs],
         "hovertemplate": hover, "marker": {"color": ACCENT, "size": 8, "opacity": 0.55}},
        {"type": "scatter", "mode": "lines+markers", "name": "Pareto front", "x": [points[i][key] for i in front],
         "y": [points[i]["score"] for i in front], "text": [texts[i] for i in front],
         "customdata": [runs[i].pk for i in front], "hovertemplate": "Pareto front<br>" + hover,
         "line": {"color": FRONT, "shape": "hv", "width": 2}, "marker": {"color": FRONT, "size": 10}},
    ]  # fmt: skip
    layout = {**BASE_LAYOUT, "height": 360, "showlegend": True, "legend": {"orientation": "h", "y": 1.08},
              "xaxis": x.xaxis, "yaxis": {"title": {"text": "score"}, "range": [-0.05, 1.05]}}  # fmt: skip
    return {"data": data, "layout": layout, "front": [runs[i].pk for i in front]}


MAX_HISTORY_POINTS = 2000  # runs the history draws as points; the best-so-far line is exact


def history(points: Sequence[tuple[int, float, bool]]) -> dict[str, Any]:
    """Each run's score in the order the runs finished, and the best full-data score so far
    (Optuna dashboard's history plot): is the search still finding better configurations?"""
    best, line = None, []
    for _, score, full in points:
        if full and (best is None or score > best):
            best = score
        line.append(best)
    step = max(1, math.ceil(len(points) / MAX_HISTORY_POINTS))  # an even sample, never only the best
    shown = range(0, len(points), step)
    data = [
        {"type": "scatter", "mode": "markers", "name": "runs", "x": [i + 1 for i in shown],
         "y": [points[i][1] for i in shown], "customdata": [points[i][0] for i in shown],
         "hovertemplate": "run %{x} to finish<br>score %{y:.3f}<extra></extra>",
         "marker": {"color": ACCENT, "size": 6, "opacity": 0.45}},
        {"type": "scatter", "mode": "lines", "name": "best so far", "x": list(range(1, len(points) + 1)), "y": line,
         "hovertemplate": "best after %{x} runs: %{y:.3f}<extra></extra>",
         "line": {"color": FRONT, "shape": "hv", "width": 2}},
    ]  # fmt: skip
    layout = {**BASE_LAYOUT, "height": 320, "showlegend": True, "legend": {"orientation": "h", "y": 1.1},
              "xaxis": {"title": {"text": "runs, in the order they finished"}},
              "yaxis": {"title": {"text": "score"}, "range": [-0.05, 1.05]}}  # fmt: skip
    return {"data": data, "layout": layout}


def importance(importances: Mapping[str, float] | None) -> dict[str, Any]:
    """Each swept parameter's share of the score's variation (Optuna's importances), most
    important on top; a note instead while there is too little to tell."""
    layout = {**BASE_LAYOUT, "height": 80 + 36 * max(1, len(importances or {})), "margin": {"l": 160, "r": 16, "t": 16, "b": 56},
              "xaxis": {"title": {"text": "importance (share of the score's variation)"}, "range": [0, 1]}}  # fmt: skip
    if not importances:
        note = "Needs two swept parameters and four finished runs."
        return {"data": [], "layout": {**layout, "annotations": [{"text": note, "showarrow": False, "x": 0.5,
                                                                  "y": 0.5, "xref": "paper", "yref": "paper"}]}}  # fmt: skip
    ranked = sorted(importances.items(), key=lambda item: item[1])  # plotly draws the first at the bottom
    data = [{"type": "bar", "orientation": "h", "x": [v for _, v in ranked], "y": [short(k) for k, _ in ranked],
             "hovertemplate": "%{y}: %{x:.2f}<extra></extra>", "marker": {"color": ACCENT}}]  # fmt: skip
    return {"data": data, "layout": layout}


def figures(
    runs: Sequence[Run],
    params: Sequence[str],
    finished: Sequence[tuple[int, float, bool]] = (),
    *,
    log_params: Collection[str] = (),
    importances: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Every chart of the page, from the runs that have a score (finished ones)."""
    scored = [run for run in runs if run.score is not None]
    if not scored:
        return {"runs": 0}
    columns = {param: [get_path(run.config, param) for run in scored] for param in params}
    texts = hover_texts(scored, columns)
    return {
        "runs": len(scored),
        "by_param": by_param(scored, columns, texts, log_params),
        "parallel": parallel(scored, columns, texts, log_params),
        "pareto": pareto(scored, texts),
        "pareto_latency": pareto(scored, texts, "latency"),  # the page's toggle swaps the two
        "history": history(finished),
        "importance": importance(importances),
    }


def json_script(value: Any, element_id: str) -> SafeString:
    """Django's json_script with the same escaping (<, > and & as \\u escapes), done by
    str.replace: its str.translate takes ~50 ms on the charts' JSON, whose hover texts are
    full of <br>, where three replaces take about one."""
    text = json.dumps(value).replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026")
    return format_html('<script id="{}" type="application/json">{}</script>', element_id, mark_safe(text))


def plotly_js_path() -> Path:
    """plotly.min.js as the plotly pip package ships it (LIBRARY_NOTES §6)."""
    import plotly  # here, not at the top: only the script's view needs the package

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@functools.cache
def plotly_js_version() -> str:
    from plotly.offline import get_plotlyjs_version

    return get_plotlyjs_version()
