"""Plots for reports, returned as embedded PNG data URIs.

Figures are rendered to PNG by matplotlib's Agg renderer and closed at once; pyplot's backend
and interactive state are left as they were.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import warnings
from collections.abc import Callable, Collection, Iterator
from typing import Any

import numpy as np

__all__ = [
    "ARTEFACT_MARK",
    "bar_plot",
    "beeswarm_plot",
    "calibration_plot",
    "figure_data_uri",
    "plot_ready",
    "waterfall_plot",
]

_DPI = 100

ARTEFACT_MARK = " (site artefact?)"
"""Appended in plots to the name of a column flagged as shifted from the source."""


def figure_data_uri(fig: Any) -> str:
    """A ``data:image/png;base64,...`` URI of a matplotlib figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@contextlib.contextmanager
def _pyplot_figure() -> Iterator[Any]:
    """A fresh pyplot figure (SHAP draws on the current one), closed afterwards."""
    import matplotlib.pyplot as plt

    with plt.ioff():
        before = set(plt.get_fignums())
        fig = plt.figure()
        try:
            yield plt
        finally:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
            plt.close(fig)


def _shap_plot(draw: Callable[[], Any]) -> str:
    with _pyplot_figure() as plt, warnings.catch_warnings():
        # a column missing in every explained record has no colour range: drawn grey
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        draw()
        return figure_data_uri(plt.gcf())


def _plot_text(value: Any) -> str:
    """Text matplotlib shows literally: no mathtext (``$``), missing as "missing"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value).replace("$", r"\$")


def plot_ready(explanation: Any, marked: Collection[str] = ()) -> Any:
    """A copy of a 2-D explanation whose names and shown values are safe to plot as text.

    The names of the ``marked`` columns (possible site artefacts) end with
    :data:`ARTEFACT_MARK`.
    """
    import shap

    shown = explanation.display_data if explanation.display_data is not None else None
    if shown is not None:
        shown = np.vectorize(_plot_text, otypes=[object])(np.asarray(shown, dtype=object))
    return shap.Explanation(
        values=np.asarray(explanation.values, dtype=np.float64),
        base_values=np.asarray(explanation.base_values, dtype=np.float64),
        data=np.asarray(explanation.data, dtype=np.float64),
        display_data=shown,
        feature_names=[
            _plot_text(n) + (ARTEFACT_MARK if n in marked else "")
            for n in explanation.feature_names
        ],
        output_names=explanation.output_names,
    )


def beeswarm_plot(explanation: Any, max_display: int = 15, marked: Collection[str] = ()) -> str:
    """SHAP beeswarm of a 2-D explanation (one dot per record and column); ``marked`` columns
    are labelled as possible site artefacts."""
    import shap

    ready = plot_ready(explanation, marked)
    return _shap_plot(lambda: shap.plots.beeswarm(ready, max_display=max_display, show=False))


def bar_plot(explanation: Any, max_display: int = 15, marked: Collection[str] = ()) -> str:
    """SHAP bar plot of the mean absolute attribution per column; ``marked`` columns are
    labelled as possible site artefacts."""
    import shap

    ready = plot_ready(explanation, marked)
    return _shap_plot(lambda: shap.plots.bar(ready, max_display=max_display, show=False))


def waterfall_plot(
    explanation: Any, row: int, max_display: int = 12, marked: Collection[str] = ()
) -> str:
    """SHAP waterfall of one record (``row`` of a 2-D explanation); ``marked`` columns are
    labelled as possible site artefacts."""
    import shap

    ready = plot_ready(explanation, marked)[row]
    return _shap_plot(lambda: shap.plots.waterfall(ready, max_display=max_display, show=False))


def calibration_plot(y: np.ndarray, p: np.ndarray, n_bins: int) -> str:
    """Reliability diagram: observed outcome rate against mean predicted probability per bin.

    Bins hold equal numbers of records (quantiles of the predictions).
    """
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
    fig = Figure(figsize=(4.8, 4.2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", label="perfectly calibrated")
    ax.plot(predicted, observed, marker="o", color="#1f5fa8", label="model")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("observed share with the outcome")
    ax.legend(loc="upper left", frameon=False)
    ax.set_title(f"{len(y):,} records, {len(predicted)} bins of equal size", fontsize=10)
    return figure_data_uri(fig)
