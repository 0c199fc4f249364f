"""Figures drawn with matplotlib and returned as inline SVG (no script, nothing fetched: works offline)."""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable
from typing import Any

import pandas as pd

__all__ = ["DRAW"]

_Draw = Callable[["pd.DataFrame"], str]

_PALETTE = ["#3b6ea5", "#e08a2c", "#4c9a5b", "#c4493f", "#7d5ba6", "#8c6d4f", "#d17fb8", "#7f7f7f",
            "#b5b33a", "#3ab5c4"]


def _colour(i: int) -> Any:
    """The palette, then tab20 when there are more series than palette colours (RFM has 11 segments)."""
    import matplotlib

    return _PALETTE[i] if i < len(_PALETTE) else matplotlib.colormaps["tab20"](i % 20)


def _figure(width: float = 7.5, height: float = 3.4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "martech", "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False,
                         "axes.prop_cycle": cycler(color=_PALETTE)})
    return plt.subplots(figsize=(width, height))


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)


def _empty(message: str) -> str:
    fig, ax = _figure(height=1.2)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#666")
    return _svg(fig)


def _unless_empty(message: str) -> Callable[[_Draw], _Draw]:
    """The figure, or ``message`` drawn in its place when the data has no rows."""
    def wrap(draw: _Draw) -> _Draw:
        @functools.wraps(draw)
        def figure(data: pd.DataFrame) -> str:
            return _empty(message) if data.empty else draw(data)
        return figure
    return wrap


def _grouped_bars(data: pd.DataFrame, xlabel: str, *, log: bool = False) -> str:
    """One group of horizontal bars per row, one bar per column."""
    fig, ax = _figure(height=max(2.2, 0.5 * len(data) + 1.4))
    width = 0.8 / len(data.columns)
    for i, col in enumerate(data.columns):
        ax.barh([j + i * width for j in range(len(data))], data[col].fillna(0), height=width, label=col)
    ax.set_yticks([j + 0.4 - width / 2 for j in range(len(data))], data.index)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel(xlabel)
    ax.legend(ncol=len(data.columns), fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _svg(fig)


@_unless_empty("No campaign runs yet")
def funnel(data: pd.DataFrame) -> str:
    return _grouped_bars(data, "contacts (log scale)", log=True)


@_unless_empty("No campaign with a holdout yet")
def uplift_forest(data: pd.DataFrame) -> str:
    fig, ax = _figure(height=max(2.0, 0.4 * len(data) + 1.0))
    ys = list(range(len(data)))
    pts = data["uplift"] * 100
    ax.errorbar(pts, ys, xerr=[pts - data["uplift_low"] * 100, data["uplift_high"] * 100 - pts],
                fmt="s", color=_PALETTE[0], ecolor=_PALETTE[0], capsize=3)
    ax.axvline(0, color="#999", lw=1, ls="--")
    ax.set_yticks(ys, data["label"])
    ax.invert_yaxis()
    ax.set_xlabel("absolute uplift of the conversion rate, percentage points (95 % interval)")
    return _svg(fig)


@_unless_empty("No campaign runs yet")
def revenue_by_arm(data: pd.DataFrame) -> str:
    return _grouped_bars(data, "revenue per member within the attribution window")


@_unless_empty("No campaign tests more than one variant")
def ab_variants(data: pd.DataFrame) -> str:
    fig, ax = _figure(height=max(2.0, 0.35 * len(data) + 1.0))
    labels = data["label"] + " / " + data["variant"]
    ys = list(range(len(data)))
    ax.barh(ys, data["prob_best"], color=_PALETTE[1])
    for y, (p, rate) in enumerate(zip(data["prob_best"], data["treatment_rate"], strict=True)):
        ax.text(p + 0.01, y, f"{p:.0%} best · rate {rate:.2%}", va="center", fontsize=7)
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.25)
    ax.set_xlabel("probability to be the best variant (Beta-Binomial)")
    return _svg(fig)


@_unless_empty("No RFM snapshot yet")
def rfm_sizes(data: pd.DataFrame) -> str:
    fig, ax = _figure()
    ax.stackplot(pd.to_datetime(data.index), data.T.to_numpy(), labels=list(data.columns),
                 colors=[_colour(i) for i in range(len(data.columns))])
    ax.set_ylabel("customers")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.autofmt_xdate()
    return _svg(fig)


@_unless_empty("Fewer than two RFM snapshots")
def migration_matrix(data: pd.DataFrame) -> str:
    fig, ax = _figure(width=7.5, height=max(3.0, 0.35 * len(data) + 1.6))
    im = ax.imshow(data.to_numpy(), cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(data.columns)), data.columns, rotation=40, ha="right")
    ax.set_yticks(range(len(data.index)), data.index)
    ax.set_xlabel("to segment")
    ax.set_ylabel("from segment")
    top = data.to_numpy().max() or 1
    for (i, j), v in pd.DataFrame(data.to_numpy()).stack().items():
        if v:
            ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=6,
                    color="white" if v > top / 2 else "black")
    fig.colorbar(im, ax=ax, label="customers")
    return _svg(fig)


@_unless_empty("No sends yet")
def engagement_trend(data: pd.DataFrame) -> str:
    fig, ax = _figure()
    x = [str(d) for d in data.index]  # one category per send day: a single day still reads as a point on its date
    for col in data.columns:
        ax.plot(x, data[col] * 100, marker="o", ms=3, label=col.replace("_", " "))
    ax.set_ylabel("%")
    ax.legend(frameon=False, fontsize=8)
    ax.tick_params(axis="x", rotation=40)
    return _svg(fig)


@_unless_empty("No validation run yet")
def data_quality_trend(data: pd.DataFrame) -> str:
    fig, ax = _figure()
    x = [str(d) for d in data.index]
    bottom = None
    for col, color in zip(data.columns, ["#4c9a5b", "#e0b02c", "#c4493f"], strict=True):
        ax.bar(x, data[col], bottom=bottom, color=color, label=col.replace("_", " "))
        bottom = data[col] if bottom is None else bottom + data[col]
    ax.set_ylabel("expectations")
    ax.tick_params(axis="x", rotation=40)
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig)


@_unless_empty("No lead-score model trained yet")
def calibration(data: pd.DataFrame) -> str:
    fig, ax = _figure(width=4.6, height=4.0)
    ax.plot([0, 1], [0, 1], color="#999", ls="--", lw=1, label="perfect calibration")
    ax.plot(data["mean_predicted"], data["observed"], marker="o", label="validation deciles")
    ax.set_xlabel("mean predicted score")
    ax.set_ylabel("observed conversion rate")
    ax.set_title(str(data.attrs.get("model_version", "")), fontsize=7)
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig)


@_unless_empty("No CLV predictions yet")
def clv_distribution(data: pd.DataFrame) -> str:
    fig, ax = _figure()
    ax.bar(data["low"], data["customers"], width=(data["high"] - data["low"]), align="edge",
           color=_PALETTE[2], edgecolor="white")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("expected revenue over the horizon")
    ax.set_ylabel("customers (log scale)")
    return _svg(fig)


@_unless_empty("No contact was excluded")
def exclusions_by_reason(data: pd.DataFrame) -> str:
    fig, ax = _figure(height=max(2.0, 0.35 * len(data) + 1.2))
    left = None
    for col in data.columns:
        ax.barh(list(data.index), data[col], left=left, label=col)
        left = data[col] if left is None else left + data[col]
    ax.invert_yaxis()
    ax.set_xlabel("contacts left out of the latest run")
    ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


DRAW: dict[str, Callable[[pd.DataFrame], str]] = {
    f.__name__: f for f in (funnel, uplift_forest, revenue_by_arm, ab_variants, rfm_sizes, migration_matrix,
                            engagement_trend, data_quality_trend, calibration, clv_distribution,
                            exclusions_by_reason)}
