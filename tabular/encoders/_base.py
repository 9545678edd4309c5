"""What every tabular encoder network shares: the column layout and its JSON configuration."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from tabular._torch import column_key
from tabular.exceptions import EncoderError
from tabular.featurizer import Featurizer

__all__ = ["ColumnTokenizer", "EncoderNetwork"]

N = TypeVar("N", bound="EncoderNetwork")


class EncoderNetwork(nn.Module):
    """Base class of the tabular encoder networks.

    A network reads the featurizer's output and returns one embedding per record. Its input
    *layout* (the numeric and categorical column names, in the featurizer's order) is part of
    its configuration, and its per-column parameters are stored under keys derived from the
    column names, so a pretrained network can gain target-only columns (:meth:`add_columns`)
    and ignore source columns the target lacks (:meth:`set_absent`).

    Subclasses register themselves in :data:`tabular.registry.ENCODERS`, set :attr:`name`,
    store their hyper-parameters in ``self._params`` (JSON-ready) and implement
    :meth:`forward`, :attr:`blocks` and :meth:`_grow`.

    Parameters
    ----------
    numeric_columns : sequence of str
        Names of the columns of the ``numeric`` / ``missing`` inputs, in order.
    categorical_columns : sequence of str
        Names of the columns of the ``categorical`` input, in order.
    cardinalities : dict of str to int
        Number of indices of each categorical column (vocabulary + missing + unknown).
    absent : iterable of str, default=()
        Columns of the layout that carry no information (the target does not record them).

    Attributes
    ----------
    out_dim : int
        Size of the embedding.
    """

    name: ClassVar[str] = ""
    out_dim: int

    def __init__(
        self,
        numeric_columns: Sequence[str],
        categorical_columns: Sequence[str],
        cardinalities: dict[str, int],
        *,
        absent: Iterable[str] = (),
    ) -> None:
        super().__init__()
        numeric_columns, categorical_columns = list(numeric_columns), list(categorical_columns)
        names = numeric_columns + categorical_columns
        if not names:
            raise EncoderError("an encoder needs at least one input column")
        if len(set(names)) != len(names):
            raise EncoderError(f"input columns repeat: {names}")
        cards = {str(k): int(v) for k, v in cardinalities.items()}
        for col in categorical_columns:
            if col not in cards:
                raise EncoderError(f"categorical column {col!r} has no cardinality")
            if cards[col] < 2:
                raise EncoderError(
                    f"categorical column {col!r}: cardinality {cards[col]} is below 2 "
                    "(index 0 is 'missing' and 1 is 'unknown')"
                )
        self.numeric_columns = numeric_columns
        self.categorical_columns = categorical_columns
        self.cardinalities = {c: cards[c] for c in categorical_columns}
        self._params: dict[str, Any] = {}
        self.absent: list[str] = []
        self._set_absent_names(absent)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_featurizer(cls: type[N], featurizer: Featurizer, **params: Any) -> N:
        """A fresh network whose layout is ``featurizer``'s output."""
        cards = dict(zip(featurizer.categorical_columns_, featurizer.cardinalities_))
        try:
            return cls(
                featurizer.numeric_columns_, featurizer.categorical_columns_, cards, **params
            )
        except TypeError as exc:
            raise EncoderError(f"bad parameters for encoder {cls.name!r}: {exc}") from exc

    def config(self) -> dict[str, Any]:
        """JSON-ready description from which :meth:`from_config` rebuilds the network."""
        return {
            "name": self.name,
            "numeric_columns": list(self.numeric_columns),
            "categorical_columns": list(self.categorical_columns),
            "cardinalities": dict(self.cardinalities),
            "absent": list(self.absent),
            **self._params,
        }

    @classmethod
    def from_config(cls: type[N], config: dict[str, Any]) -> N:
        """Rebuild an untrained network from :meth:`config` output (load weights afterwards)."""
        params = dict(config)
        name = params.pop("name", cls.name)
        if name != cls.name:
            raise EncoderError(f"config describes encoder {name!r}, not {cls.name!r}")
        try:
            numeric = params.pop("numeric_columns")
            categorical = params.pop("categorical_columns")
            cards = params.pop("cardinalities")
        except KeyError as exc:
            raise EncoderError(f"malformed encoder config: missing {exc}") from exc
        try:
            return cls(numeric, categorical, cards, **params)
        except TypeError as exc:
            raise EncoderError(f"malformed config for encoder {cls.name!r}: {exc}") from exc

    # ------------------------------------------------------------------ layout
    @property
    def column_names(self) -> list[str]:
        """Every input column: numeric first, then categorical."""
        return [*self.numeric_columns, *self.categorical_columns]

    @property
    def blocks(self) -> list[nn.Module]:
        """The network's stages, ordered input to output; each parameter is in exactly one."""
        raise NotImplementedError

    def add_columns(self: N, featurizer: Featurizer) -> N:
        """Adopt the layout of ``featurizer``, which extends this network's layout.

        ``featurizer`` is typically ``source_featurizer.extend(target_only_columns)``: its
        columns are this network's columns followed by new ones. New columns get freshly
        initialised parameters, to be trained on the target; existing parameters are kept.
        Changes the network in place and returns it.
        """
        old_num, old_cat = self.numeric_columns, self.categorical_columns
        new_num_all = list(featurizer.numeric_columns_)
        new_cat_all = list(featurizer.categorical_columns_)
        if new_num_all[: len(old_num)] != old_num or new_cat_all[: len(old_cat)] != old_cat:
            raise EncoderError(
                "the featurizer does not extend this network's layout: expected numeric columns "
                f"starting with {old_num} and categorical columns starting with {old_cat}; "
                "build it with Featurizer.extend on the encoder's featurizer"
            )
        cards = dict(zip(featurizer.categorical_columns_, featurizer.cardinalities_))
        for col in old_cat:
            if cards[col] != self.cardinalities[col]:
                raise EncoderError(
                    f"categorical column {col!r} has {cards[col]} indices in the featurizer but "
                    f"{self.cardinalities[col]} in the network; use the encoder's own featurizer"
                )
        new_num = new_num_all[len(old_num) :]
        new_cat = new_cat_all[len(old_cat) :]
        if not new_num and not new_cat:
            return self
        self._grow(new_num, new_cat, {c: cards[c] for c in new_cat})
        self.numeric_columns = new_num_all
        self.categorical_columns = new_cat_all
        self.cardinalities.update({c: cards[c] for c in new_cat})
        self._layout_changed()
        return self

    def set_absent(self: N, names: Iterable[str]) -> N:
        """Declare the columns (of the layout) that the data does not record.

        Absent columns carry no information: whatever their input values, the embedding does
        not depend on them (see each network for how). Replaces the previous set; changes the
        network in place and returns it.
        """
        self._set_absent_names(names)
        self._layout_changed()
        return self

    def _set_absent_names(self, names: Iterable[str]) -> None:
        if isinstance(names, str):
            raise EncoderError("absent must be a list of column names, not a single string")
        absent = list(dict.fromkeys(str(n) for n in names))
        known = set(self.column_names)
        unknown = [n for n in absent if n not in known]
        if unknown:
            raise EncoderError(
                f"absent columns {unknown} are not input columns of this encoder; "
                f"its columns are {self.column_names}"
            )
        self.absent = absent

    def _present(self) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        """``(position, column key)`` of the numeric and categorical columns not absent."""
        absent = set(self.absent)
        numeric = [
            (j, column_key(c)) for j, c in enumerate(self.numeric_columns) if c not in absent
        ]
        categorical = [
            (j, column_key(c)) for j, c in enumerate(self.categorical_columns) if c not in absent
        ]
        return numeric, categorical

    def _column_blocks(self, width: int) -> dict[str, list[int]]:
        """Positions of each present column's inputs when every present column has one block
        of ``width`` inputs, numeric columns first (the layout of ``column_inputs`` of the
        token-per-column networks)."""
        numeric, categorical = self._present()
        present = [self.numeric_columns[j] for j, _ in numeric]
        present += [self.categorical_columns[j] for j, _ in categorical]
        return {c: list(range(i * width, (i + 1) * width)) for i, c in enumerate(present)}

    def _layout_changed(self) -> None:
        """Hook for subclasses that cache layout-derived values."""

    def _grow(
        self, numeric: list[str], categorical: list[str], cardinalities: dict[str, int]
    ) -> None:
        raise NotImplementedError

    def _check_inputs(
        self, numeric: torch.Tensor, missing: torch.Tensor, categorical: torch.Tensor
    ) -> None:
        p, q = len(self.numeric_columns), len(self.categorical_columns)
        if numeric.ndim != 2 or numeric.shape[1] != p or missing.shape != numeric.shape:
            raise EncoderError(
                f"numeric and missing inputs must have shape (n, {p}), got "
                f"{tuple(numeric.shape)} and {tuple(missing.shape)}"
            )
        if categorical.ndim != 2 or categorical.shape != (numeric.shape[0], q):
            raise EncoderError(
                f"categorical input must have shape ({numeric.shape[0]}, {q}), "
                f"got {tuple(categorical.shape)}"
            )

    def extra_repr(self) -> str:
        return (
            f"numeric={len(self.numeric_columns)}, categorical={len(self.categorical_columns)}, "
            f"absent={len(self.absent)}, out_dim={self.out_dim}"
        )


class ColumnTokenizer(nn.Module):
    """One ``d``-dimensional vector per column and record, with parameters keyed by column.

    A numeric column ``j`` maps ``(x, m)`` (standardised value, missing flag) to
    ``x * w_j + b_j + m * u_j``: a per-column weight and bias, and where the value is missing
    a learned per-column *missing token* ``b_j + u_j`` (the value is zero there). A categorical
    column looks its index up in a per-column embedding (index 0, "missing", has its own row).
    Each column's parameters are an ``nn.Linear(2, d)`` or ``nn.Embedding`` in a module dict,
    so Opacus computes per-sample gradients for them with its standard layers.

    Parameters
    ----------
    numeric_columns, categorical_columns : sequence of str
    cardinalities : dict of str to int
    d : int
        Size of each column vector.
    """

    def __init__(
        self,
        numeric_columns: Sequence[str],
        categorical_columns: Sequence[str],
        cardinalities: dict[str, int],
        d: int,
    ) -> None:
        super().__init__()
        self.d = d
        self.numeric = nn.ModuleDict()
        self.categorical = nn.ModuleDict()
        self.add(numeric_columns, categorical_columns, cardinalities)

    def add(
        self,
        numeric_columns: Sequence[str],
        categorical_columns: Sequence[str],
        cardinalities: dict[str, int],
    ) -> None:
        """Create parameters for new columns."""
        bound = self.d**-0.5
        for col in numeric_columns:
            layer = nn.Linear(2, self.d)
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.uniform_(layer.bias, -bound, bound)
            self.numeric[column_key(col)] = layer
        for col in categorical_columns:
            emb = nn.Embedding(cardinalities[col], self.d)
            nn.init.uniform_(emb.weight, -bound, bound)
            self.categorical[column_key(col)] = emb

    def forward(
        self,
        numeric: torch.Tensor,
        missing: torch.Tensor,
        categorical: torch.Tensor,
        numeric_present: Sequence[tuple[int, str]],
        categorical_present: Sequence[tuple[int, str]],
    ) -> torch.Tensor:
        """Column vectors of shape ``(n, len(numeric_present) + len(categorical_present), d)``.

        ``*_present`` list the ``(input position, column key)`` of the columns to embed.
        """
        m = missing.to(numeric.dtype)
        x = numeric * (1.0 - m)
        tokens = [
            self.numeric[key](torch.stack((x[:, j], m[:, j]), dim=1)) for j, key in numeric_present
        ]
        # (n, 1) indices, not (n,): Opacus' expanded-weights mode needs a batch dimension
        tokens += [
            self.categorical[key](categorical[:, j : j + 1]).squeeze(1)
            for j, key in categorical_present
        ]
        if not tokens:
            return numeric.new_zeros((numeric.shape[0], 0, self.d))
        return torch.stack(tokens, dim=1)
