"""Control charts: an interactive Plotly figure and a static PNG for reports.

Both show the values, the centre line and control limits of each segment, the
tolerance and action bands, the baseline shaded and the signals marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.qa.presentation import chart_title
from agent.qa.result import SeriesResult


def _chart_parts(result: SeriesResult) -> dict[str, Any]:
    """The chart's data, shared by both renderers (from the result alone)."""
    if result.chart is None:
        raise ValueError(f"{result.label}: the result carries no chart data (it "
                         "was read back from JSON); analyse the series again")
    chart = result.chart
    dates = chart.dates.astype("datetime64[s]").astype("O")
    segments = []
    for seg in chart.segments:
        if seg.end <= seg.start:
            continue
        base = seg.baseline
        segments.append({
            "start": dates[seg.start], "end": dates[seg.end - 1],
            "limits": seg.limits,
            "baseline": (dates[base[0]], dates[base[1] - 1]) if base else None,
        })
    signal_dates: dict[str, list[str]] = {}
    for sig in result.signals:
        if sig.rule in ("EWMA", "CUSUM"):
            continue
        signal_dates.setdefault(sig.date, []).append(sig.rule)
    bands = result.tolerance.bands() if result.tolerance else {}
    return {"result": result, "dates": dates, "values": np.asarray(chart.values),
            "segments": segments, "signals": signal_dates, "bands": bands,
            "title": chart_title(result)}


def control_chart(result: SeriesResult) -> Any:
    """Interactive Plotly control chart of an analysed series."""
    import plotly.graph_objects as go

    parts = _chart_parts(result)
    fig = go.Figure()
    for seg in parts["segments"][1:]:
        # Each segment after the first starts at a baseline reset (a
        # recalibration): marked, so "since the recalibration" can be seen.
        fig.add_vline(x=seg["start"], line_color="purple", line_dash="dash")
        fig.add_annotation(x=seg["start"], y=1, yref="paper", showarrow=False,
                           text="baseline reset", font={"color": "purple"})
    for seg in parts["segments"]:
        if seg["baseline"]:
            fig.add_vrect(x0=seg["baseline"][0], x1=seg["baseline"][1],
                          fillcolor="#9ecae1", opacity=0.25, line_width=0,
                          annotation_text="baseline", annotation_position="top left")
        lim = seg["limits"]
        if lim is not None:
            x = [seg["start"], seg["end"]]
            fig.add_trace(go.Scatter(x=x, y=[lim.center] * 2, mode="lines",
                                     line={"color": "green"}, name="centre",
                                     showlegend=False))
            for y, name in ((lim.ucl, "UCL"), (lim.lcl, "LCL")):
                fig.add_trace(go.Scatter(x=x, y=[y] * 2, mode="lines",
                                         line={"color": "orange", "dash": "dash"},
                                         name=name, showlegend=False))
    bands = parts["bands"]
    for key, color, label in (("tol_high", "red", "tolerance"),
                              ("tol_low", "red", "tolerance"),
                              ("act_high", "darkred", "action"),
                              ("act_low", "darkred", "action")):
        if bands.get(key) is not None:
            fig.add_hline(y=bands[key], line_color=color, line_dash="dot",
                          annotation_text=f"{label} {bands[key]:g}")
    fig.add_trace(go.Scatter(x=parts["dates"], y=parts["values"],
                             mode="lines+markers", name=result.unit,
                             marker={"size": 4, "color": "#1f77b4"},
                             line={"width": 1}))
    if parts["signals"]:
        sig_x = [np.datetime64(d, "s").astype("O") for d in parts["signals"]]
        index = {d: i for i, d in enumerate(parts["dates"])}
        sig_y = [parts["values"][index[x]] if x in index else None for x in sig_x]
        fig.add_trace(go.Scatter(
            x=sig_x, y=sig_y, mode="markers", name="signals",
            marker={"color": "red", "size": 9, "symbol": "circle-open"},
            text=[", ".join(r) for r in parts["signals"].values()],
            hovertemplate="%{x}: %{y}<br>%{text}<extra></extra>"))
    if result.drift.onset:
        fig.add_vline(x=np.datetime64(result.drift.onset, "s").astype("O"),
                      line_color="purple", line_dash="dash",
                      annotation_text="drift onset")
    fig.update_layout(title=parts["title"], xaxis_title="date",
                      yaxis_title=f"{result.test} ({result.unit})",
                      template="plotly_white", height=420,
                      margin={"l": 60, "r": 20, "t": 60, "b": 40})
    return fig


def control_chart_png(result: SeriesResult, path: str | Path,
                      dpi: int = 120) -> Path:
    """Write a static PNG control chart (matplotlib, no browser needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = _chart_parts(result)
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=dpi)
    for seg in parts["segments"]:
        if seg["baseline"]:
            ax.axvspan(seg["baseline"][0], seg["baseline"][1], color="#9ecae1",
                       alpha=0.3, lw=0)
        lim = seg["limits"]
        if lim is not None:
            x = [seg["start"], seg["end"]]
            ax.plot(x, [lim.center] * 2, color="green", lw=1)
            ax.plot(x, [lim.ucl] * 2, color="orange", ls="--", lw=1)
            ax.plot(x, [lim.lcl] * 2, color="orange", ls="--", lw=1)
    for key, color in (("tol_high", "red"), ("tol_low", "red"),
                       ("act_high", "darkred"), ("act_low", "darkred")):
        if parts["bands"].get(key) is not None:
            ax.axhline(parts["bands"][key], color=color, ls=":", lw=1)
    ax.plot(parts["dates"], parts["values"], marker=".", ms=3, lw=0.6,
            color="#1f77b4")
    if parts["signals"]:
        index = {d: i for i, d in enumerate(parts["dates"])}
        xs = [np.datetime64(d, "s").astype("O") for d in parts["signals"]]
        xs = [x for x in xs if x in index]
        ax.scatter(xs, [parts["values"][index[x]] for x in xs], s=30,
                   facecolors="none", edgecolors="red", zorder=3)
    if result.drift.onset:
        ax.axvline(np.datetime64(result.drift.onset, "s").astype("O"),
                   color="purple", ls="--", lw=1)
    ax.set_title(parts["title"], fontsize=10)
    ax.set_ylabel(f"{result.test} ({result.unit})")
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
