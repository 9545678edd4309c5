"""The featurizer output as a flat feature vector: with a linear head, a logistic regression."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from tabular.encoders._base import EncoderNetwork
from tabular.exceptions import EncoderError
from tabular.featurizer import MISSING_INDEX, UNKNOWN_INDEX, Featurizer
from tabular.registry import ENCODERS

__all__ = ["LinearFeatures"]


class _Gather(nn.Module):
    """The parameter-free stage of :class:`LinearFeatures`: picks features from the raw inputs.

    ``index[k]`` is the column of ``[0, values, missing flags, one-hot of every category
    index]`` that feature ``k`` reads; column 0 is a constant zero (absent columns read it).
    ``offsets[j]`` is where categorical column ``j``'s one-hot block starts in the one-hot
    part, and ``cardinalities[j]`` its size. After the one-hots come the level indicators of
    the ordinal columns (``ordinal``: numeric position and standardised level values). The
    buffers are derived from the layout (not saved); they move with the module, so the network
    has a device although it has no parameters.
    """

    index: torch.Tensor
    offsets: torch.Tensor
    cardinalities: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("index", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("offsets", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("cardinalities", torch.zeros(0, dtype=torch.long), persistent=False)
        # ordinal level indicators: for each ordinal column, its numeric position and the
        # standardised values of its levels (plain attributes moved by _apply, not buffers,
        # since their number changes with the layout)
        self.ordinal: list[tuple[int, torch.Tensor]] = []

    def set_layout(
        self,
        index: list[int],
        offsets: list[int],
        cardinalities: list[int],
        ordinal: Sequence[tuple[int, list[float]]] = (),
    ) -> None:
        device = self.index.device
        self.index = torch.tensor(index, dtype=torch.long, device=device)
        self.offsets = torch.tensor(offsets, dtype=torch.long, device=device)
        self.cardinalities = torch.tensor(cardinalities, dtype=torch.long, device=device)
        self.ordinal = [
            (j, torch.tensor(values, dtype=torch.float32, device=device)) for j, values in ordinal
        ]

    def _apply(self, fn: Any, recurse: bool = True) -> _Gather:
        # keep the level values on the module's device and dtype (they are plain attributes)
        super()._apply(fn, recurse)
        self.ordinal = [(j, fn(values)) for j, values in self.ordinal]
        return self

    def forward(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        n = numeric.shape[0]
        m = missing.to(numeric.dtype)
        parts = [numeric.new_zeros((n, 1)), numeric * (1.0 - m), m]
        if categorical.shape[1]:
            width = int(self.cardinalities.sum())
            one_hot = numeric.new_zeros((n, width))
            one_hot.scatter_(1, categorical + self.offsets, 1.0)
            parts.append(one_hot)
        for j, levels in self.ordinal:
            # the level nearest to the standardised value (exact up to float rounding; a value
            # clipped by the featurizer still lands on the extreme level), 0 where missing
            nearest = (numeric[:, j : j + 1] - levels.to(numeric.dtype)).abs().argmin(dim=1)
            one_hot = torch.nn.functional.one_hot(nearest, levels.numel()).to(numeric.dtype)
            parts.append(one_hot * (1.0 - m[:, j : j + 1]))
        return torch.cat(parts, dim=1).index_select(1, self.index)


@ENCODERS.register("linear")
class LinearFeatures(EncoderNetwork):
    """The featurizer output as one flat feature vector: with a linear head, a logistic regression.

    The embedding holds, column by column, the standardised value and the missing flag of each
    numeric column (the value is 0, the source mean, where it is missing) and the one-hot
    encoding of each categorical column: one feature for "missing" (index 0) and one per
    vocabulary entry. A category outside the source vocabulary ("unknown", index 1) sets none
    of them, like scikit-learn's ``OneHotEncoder(handle_unknown="ignore")``. An ordinal column
    (a numeric input whose standardised level values are in ``ordinal_levels``;
    :meth:`from_featurizer` fills them in from the featurizer) has, beside its value (the
    trend over levels) and missing flag, one indicator per level, so the model can also fit
    a step per level where the trend is not linear (deprivation bands, age bands, education).
    With the ``Linear(out_dim, 1)`` head of :class:`~tabular.EncoderClassifier` (or of the
    supervised objective) the model *is* a logistic regression on these features: supervised
    pretraining fits it on the source (regularised by weight decay and early stopping) and
    fine-tuning adjusts its coefficients.

    The network has no parameters: every coefficient is in the head, so a linear probe, a
    partial and a full fine-tune all train exactly the head, and Opacus clips the head's
    per-record gradients. (A per-column scale initialised to 1 would make each coefficient a
    product of two trained numbers, which weight decay and DP noise treat differently from a
    logistic regression; a placeholder parameter would be trained by a full fine-tune without
    a gradient.) Its one block (:attr:`blocks`) is the parameter-free feature map, whose
    buffers give the network a device.

    Columns declared absent (:meth:`set_absent`) keep their features, which are always 0, so
    they carry no information and the embedding keeps its size. Columns added with
    :meth:`add_columns` append their features at the *end* of the embedding, so the first
    ``out_dim`` features of a pretrained network keep their meaning and a pretrained head
    grows by zero coefficients (``TabularEncoder.with_columns`` does this for the source head).

    Parameters
    ----------
    numeric_columns, categorical_columns : sequence of str
    cardinalities : dict of str to int
    order : sequence of str, optional
        The columns in embedding order (default: numeric, then categorical). Kept in the
        configuration, since added columns come last whatever their kind.
    absent : iterable of str, default=()
    ordinal_levels : dict of str to list of float, optional
        For each ordinal column (a numeric input), the standardised values of its levels,
        lowest level first. Kept in the configuration.

    Attributes
    ----------
    out_dim : int
        ``2 * n_numeric + sum(cardinality - 1)`` over the categorical columns, plus the
        number of levels of each ordinal column.

    Shapes
    ------
    numeric, missing : (n, n_numeric); categorical : (n, n_categorical) -> (n, out_dim)

    Examples
    --------
    >>> import torch
    >>> net = LinearFeatures(["age"], ["sex"], {"sex": 4})
    >>> net.out_dim, net.feature_names
    (5, ['age', 'age:missing', 'sex:missing', 'sex:2', 'sex:3'])
    >>> numeric = torch.tensor([[0.5], [0.0]])
    >>> missing = torch.tensor([[False], [True]])
    >>> net(numeric, missing, torch.tensor([[2], [1]]))  # 1 = unknown category: no feature set
    tensor([[0.5000, 0.0000, 0.0000, 1.0000, 0.0000],
            [0.0000, 1.0000, 0.0000, 0.0000, 0.0000]])
    """

    name = "linear"

    pretraining_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 1,
        "weight_decay": 0.01,
    }
    """Settings :func:`graphxfer.pretrain` uses for this encoder unless told otherwise.

    With the ``supervised`` objective, :func:`tabular.pretrain` fits this model exactly (it is
    a logistic regression: full-batch L-BFGS on every row, L2 penalty ``weight_decay / 2 *
    |w|^2`` added to the mean log-loss, the intercept not penalised), so one stochastic epoch
    is enough to start it. ``weight_decay=0.01`` is scikit-learn's ``C = 1 / (0.01 n)``, a
    moderate penalty for a few hundred source rows; ``pretrain(source, "auto")`` chooses it
    by cross-site validation.
    """

    def __init__(
        self,
        numeric_columns: Sequence[str],
        categorical_columns: Sequence[str],
        cardinalities: dict[str, int],
        *,
        order: Sequence[str] | None = None,
        absent: Iterable[str] = (),
        ordinal_levels: dict[str, Sequence[float]] | None = None,
    ) -> None:
        super().__init__(numeric_columns, categorical_columns, cardinalities, absent=absent)
        default = self.column_names
        if order is None:
            order = default
        if isinstance(order, str) or sorted(order) != sorted(default):
            raise EncoderError(
                f"order must list every input column once, got {order!r}; the columns are {default}"
            )
        self._order = [str(c) for c in order]
        self._levels = self._check_levels(ordinal_levels or {})
        self._set_params()
        self.gather = _Gather()
        self._layout_changed()

    def _check_levels(self, levels: dict[str, Sequence[float]]) -> dict[str, list[float]]:
        checked: dict[str, list[float]] = {}
        for column, values in levels.items():
            if column not in self.numeric_columns:
                raise EncoderError(
                    f"ordinal_levels names {column!r}, which is not a numeric input column; "
                    f"the numeric columns are {self.numeric_columns}"
                )
            try:
                floats = [float(v) for v in values]
            except (TypeError, ValueError) as exc:
                raise EncoderError(
                    f"ordinal_levels[{column!r}] must be a list of numbers: {exc}"
                ) from exc
            if not floats or not all(math.isfinite(v) for v in floats):
                raise EncoderError(
                    f"ordinal_levels[{column!r}] must be a non-empty list of finite numbers, "
                    f"got {values!r}"
                )
            checked[str(column)] = floats
        return checked

    def _set_params(self) -> None:
        self._params = {"order": list(self._order)}
        if self._levels:
            self._params["ordinal_levels"] = {c: list(v) for c, v in self._levels.items()}

    @classmethod
    def from_featurizer(cls, featurizer: Featurizer, **params: Any) -> LinearFeatures:
        """A fresh network over ``featurizer``'s output, with level indicators for its ordinal
        columns (unless ``ordinal_levels`` is given)."""
        if "ordinal_levels" not in params:
            params["ordinal_levels"] = _featurizer_levels(featurizer, featurizer.numeric_columns_)
        return super().from_featurizer(featurizer, **params)

    def add_columns(self, featurizer: Featurizer) -> LinearFeatures:
        """Adopt ``featurizer``'s extended layout; new ordinal columns get level indicators."""
        new = [c for c in featurizer.numeric_columns_ if c not in self.numeric_columns]
        levels = _featurizer_levels(featurizer, new)
        super().add_columns(featurizer)
        if levels:
            self._levels.update(levels)
            self._set_params()
            self._layout_changed()
        return self

    # ------------------------------------------------------------------ layout
    @property
    def blocks(self) -> list[nn.Module]:
        """``[feature map]``: one stage without parameters (every coefficient is in the head)."""
        return [self.gather]

    def _width(self, column: str) -> int:
        if column in self.cardinalities:
            return self.cardinalities[column] - 1  # every index but "unknown"
        return 2 + len(self._levels.get(column, ()))

    def _layout_changed(self) -> None:
        p = len(self.numeric_columns)
        numeric_at = {c: j for j, c in enumerate(self.numeric_columns)}
        categorical_at = {c: j for j, c in enumerate(self.categorical_columns)}
        cards = [self.cardinalities[c] for c in self.categorical_columns]
        offsets = [sum(cards[:j]) for j in range(len(cards))]
        absent = set(self.absent)
        # the level indicators come after the categorical one-hots, column after column
        ordinal = [(numeric_at[c], self._levels[c]) for c in self._order if c in self._levels]
        level_at: dict[str, int] = {}
        at = 1 + 2 * p + sum(cards)
        for column in (c for c in self._order if c in self._levels):
            level_at[column] = at
            at += len(self._levels[column])
        index: list[int] = []
        slices: dict[str, list[int]] = {}
        names: list[str] = []
        for column in self._order:
            start = len(index)
            if column in numeric_at:
                j = numeric_at[column]
                reads = [1 + j, 1 + p + j]
                names += [column, f"{column}:missing"]
                if column in self._levels:
                    k = len(self._levels[column])
                    reads += [level_at[column] + i for i in range(k)]
                    names += [f"{column}:level{i}" for i in range(k)]
            else:
                j = categorical_at[column]
                base = 1 + 2 * p + offsets[j]
                kept = [i for i in range(cards[j]) if i != UNKNOWN_INDEX]
                reads = [base + i for i in kept]
                names += [
                    f"{column}:missing" if i == MISSING_INDEX else f"{column}:{i}" for i in kept
                ]
            index += [0] * len(reads) if column in absent else reads
            slices[column] = list(range(start, len(index)))
        self._slices = slices
        self._feature_names = names
        self.out_dim = len(index)
        self.gather.set_layout(index, offsets, cards, ordinal)

    def _grow(
        self, numeric: list[str], categorical: list[str], cardinalities: dict[str, int]
    ) -> None:
        # nothing to initialise: the new features come last (see the class docstring), and
        # the base class updates the layout, after which _layout_changed rebuilds the map
        self._order += [*numeric, *categorical]
        self._set_params()

    @property
    def feature_names(self) -> list[str]:
        """A name per embedding feature: ``col``, ``col:missing`` and ``col:<index>``
        (``<index>`` is the featurizer's category index, 2 = first vocabulary entry)."""
        return list(self._feature_names)

    @property
    def feature_slices(self) -> dict[str, list[int]]:
        """The embedding positions of each column's features (absent columns included)."""
        return {c: list(v) for c, v in self._slices.items()}

    # ------------------------------------------------------------------ forward
    def forward(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """The feature vector of each record; see the class docstring for shapes."""
        self._check_inputs(numeric, missing, categorical)
        cards = self.gather.cardinalities
        if categorical.shape[1] and bool(((categorical < 0) | (categorical >= cards)).any()):
            bad = ((categorical < 0) | (categorical >= cards)).any(dim=0).nonzero().flatten()
            names = [self.categorical_columns[int(j)] for j in bad]
            raise EncoderError(
                f"category indices out of range in columns {names}; encode the data with the "
                "encoder's own featurizer"
            )
        return self.gather(numeric, missing, categorical)

    # ------------------------------------------------------------------ per-column inputs
    def column_groups(self) -> dict[str, list[int]]:
        """Positions of each present column's features in :meth:`column_inputs` output."""
        groups: dict[str, list[int]] = {}
        start = 0
        for column in self._order:
            if column not in self.absent:
                width = self._width(column)
                groups[column] = list(range(start, start + width))
                start += width
        return groups

    def column_inputs(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        """The per-column inputs of the differentiable part: features of present columns.

        ``from_column_inputs(column_inputs(...))`` equals ``forward(...)``; explainers
        attribute to these inputs and sum them per column with :meth:`column_groups`.

        Shapes
        ------
        -> (n, sum of the present columns' widths)
        """
        return self(numeric, missing, categorical).index_select(1, self._present_positions())

    def from_column_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The embedding from :meth:`column_inputs` output (absent columns' features are 0)."""
        positions = self._present_positions()
        if inputs.ndim != 2 or inputs.shape[1] != positions.numel():
            raise EncoderError(
                f"column inputs must have shape (n, {positions.numel()}), got {tuple(inputs.shape)}"
            )
        return inputs.new_zeros((inputs.shape[0], self.out_dim)).index_copy(1, positions, inputs)

    def _present_positions(self) -> torch.Tensor:
        absent = set(self.absent)
        positions = [k for c in self._order if c not in absent for k in self._slices[c]]
        return torch.tensor(positions, dtype=torch.long, device=self.gather.index.device)


def _featurizer_levels(featurizer: Featurizer, columns: Sequence[str]) -> dict[str, list[float]]:
    """The standardised value of each level of the ordinal ``columns``, as the featurizer
    writes them (level index ``k`` becomes ``(k - center) / scale``)."""
    levels: dict[str, list[float]] = {}
    for column in columns:
        names = featurizer.levels_.get(column)
        if not names:
            continue
        j = featurizer.numeric_columns_.index(column)
        center, scale = float(featurizer.center_[j]), float(featurizer.scale_[j])
        levels[column] = [(k - center) / scale for k in range(len(names))]
    return levels
