"""The tabular networks' public per-column path, which the explainers build on.

``from_column_inputs(column_inputs(x))`` must be ``forward(x)``; each column's inputs must
depend on that column alone (so that masking composes rows from per-column inputs); and
``column_groups`` must lay the inputs out column by column.
"""

from __future__ import annotations

import pytest
import torch

from tabular.encoders import FTTransformer, ResidualMLP
from tabular.exceptions import EncoderError

NUMERIC = ["age", "bp", "chol"]
CATEGORICAL = ["cp", "thal"]
CARDS = {"cp": 6, "thal": 5}


def _network(name: str, **params: object) -> FTTransformer | ResidualMLP:
    torch.manual_seed(0)
    if name == "ft-transformer":
        net: FTTransformer | ResidualMLP = FTTransformer(
            NUMERIC, CATEGORICAL, CARDS, d_token=8, n_heads=2, **params
        )
    else:
        net = ResidualMLP(NUMERIC, CATEGORICAL, CARDS, width=8, **params)
    return net.eval()


def _inputs(n: int = 9, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    numeric = torch.randn(n, len(NUMERIC), generator=gen)
    missing = torch.rand(n, len(NUMERIC), generator=gen) < 0.2
    categorical = torch.stack(
        [torch.randint(0, CARDS[c], (n,), generator=gen) for c in CATEGORICAL], dim=1
    )
    return numeric, missing, categorical


@pytest.mark.parametrize("name", ["ft-transformer", "mlp"])
def test_the_per_column_path_is_the_forward_pass(name: str) -> None:
    net = _network(name)
    inputs = _inputs()
    with torch.no_grad():
        flat = net.column_inputs(*inputs)
        torch.testing.assert_close(net.from_column_inputs(flat), net(*inputs), rtol=0, atol=1e-6)
    d = net.out_dim
    assert flat.shape == (9, d * 5)
    groups = net.column_groups()
    assert list(groups) == NUMERIC + CATEGORICAL
    assert [i for cols in groups.values() for i in cols] == list(range(5 * d))


@pytest.mark.parametrize("name", ["ft-transformer", "mlp"])
def test_a_columns_inputs_depend_on_that_column_only(name: str) -> None:
    net = _network(name)
    numeric, missing, categorical = _inputs()
    other_numeric, other_missing, other_categorical = _inputs(seed=2)
    groups = net.column_groups()
    with torch.no_grad():
        base = net.column_inputs(numeric, missing, categorical)
        # change every column but "bp" and "cp": their inputs stay as they were
        numeric2, missing2 = other_numeric.clone(), other_missing.clone()
        numeric2[:, 1], missing2[:, 1] = numeric[:, 1], missing[:, 1]
        categorical2 = other_categorical.clone()
        categorical2[:, 0] = categorical[:, 0]
        changed = net.column_inputs(numeric2, missing2, categorical2)
    for column in groups:
        same = torch.equal(base[:, groups[column]], changed[:, groups[column]])
        assert same == (column in ("bp", "cp")), column


@pytest.mark.parametrize("name", ["ft-transformer", "mlp"])
def test_absent_columns_have_no_inputs(name: str) -> None:
    net = _network(name).set_absent(["chol", "thal"])
    inputs = _inputs()
    with torch.no_grad():
        flat = net.column_inputs(*inputs)
        torch.testing.assert_close(net.from_column_inputs(flat), net(*inputs), rtol=0, atol=1e-6)
    assert list(net.column_groups()) == ["age", "bp", "cp"]
    assert flat.shape == (9, 3 * net.out_dim)


@pytest.mark.parametrize("name", ["ft-transformer", "mlp"])
def test_wrong_widths_are_refused(name: str) -> None:
    net = _network(name)
    with pytest.raises(EncoderError, match="column inputs must have shape"):
        net.from_column_inputs(torch.zeros(2, 3))


def test_dropped_missing_values_cannot_go_through_the_tokens() -> None:
    net = _network("ft-transformer", missing="drop")
    flat = net.column_inputs(*_inputs())
    with pytest.raises(EncoderError, match="missing='drop'"):
        net.from_column_inputs(flat)
