"""Every encoder name graphxfer accepts derives from the registries: an encoder registered under
a new name is accepted by ``pretrain``, ``load_encoder``, the command line and distributed
pretraining, and forgotten by all of them once it is unregistered."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphxfer
import graphxfer.encoder
import graphxfer.registry
from graphxfer import Cohort, datasets, load_encoder
from graphxfer._cli_cohorts import UserError
from graphxfer.cli._base import build_parser
from graphxfer.distributed import DistributedUnsupportedError, check_distributed_encoder
from graphxfer.exceptions import GraphxferError
from graphxfer.registry import (
    GRAPH_NETWORKS,
    EncoderNames,
    Names,
    encoder_kind,
    encoder_kinds,
    graph_encoder_names,
    tabular_encoder_names,
)
from tabular.exceptions import RegistryError
from tabular.registry import ENCODERS, Registry

TINY_TABULAR = "tiny-test-mlp"
TINY_GRAPH = "tiny-test-sage"


@pytest.fixture(scope="module")
def heart() -> Cohort:
    return datasets.load_heart_disease(sites=["cleveland", "hungarian"])


@pytest.fixture
def tiny_tabular() -> Iterator[str]:
    """A small subclass of the MLP registered as a tabular encoder for one test."""
    tabular_encoder_names()  # the built-in networks are registered
    base: Any = ENCODERS.get("mlp")

    class TinyMLP(base):  # type: ignore[misc, valid-type]
        name = TINY_TABULAR

    ENCODERS.register(TINY_TABULAR)(TinyMLP)
    try:
        yield TINY_TABULAR
    finally:
        ENCODERS.unregister(TINY_TABULAR)


@pytest.fixture
def tiny_graph() -> Iterator[str]:
    """A subclass of GraphSAGE registered as a graph encoder for one test."""
    pytest.importorskip("torch_geometric")
    from graphxfer.graphs import GraphSAGEEncoder

    class TinySAGE(GraphSAGEEncoder):
        name = TINY_GRAPH

    GRAPH_NETWORKS.register(TINY_GRAPH)(TinySAGE)
    try:
        yield TINY_GRAPH
    finally:
        GRAPH_NETWORKS.unregister(TINY_GRAPH)


def _encoder_choices() -> Any:
    _, parsers = build_parser()
    (action,) = [a for a in parsers["pretrain"]._actions if "--encoder" in a.option_strings]
    return action.choices


# ----------------------------------------------------------------------------- the lists
def test_the_encoder_lists_are_read_from_the_registries() -> None:
    assert graphxfer.encoder.TABULAR_ENCODERS == tuple(ENCODERS.names())
    assert {"ft-transformer", "linear", "mlp", "tabnet"} <= set(graphxfer.encoder.TABULAR_ENCODERS)
    pytest.importorskip("torch_geometric")
    assert graphxfer.encoder.GRAPH_ENCODERS == tuple(GRAPH_NETWORKS.names())
    assert set(graphxfer.encoder.GRAPH_ENCODERS) == {"gat", "gin", "graphsage"}
    # each kind in its own registry, and both in every list of all encoders
    assert not set(ENCODERS.names()) & set(GRAPH_NETWORKS.names())
    assert encoder_kinds() == {
        **{n: "graph" for n in GRAPH_NETWORKS.names()},
        **{n: "tabular" for n in ENCODERS.names()},
    }
    assert list(_encoder_choices()) == [*ENCODERS.names(), *GRAPH_NETWORKS.names(), "auto"]
    with pytest.raises(AttributeError, match="ENCODER_NAMES"):
        graphxfer.encoder.ENCODER_NAMES  # noqa: B018


def test_names_are_a_live_view() -> None:
    registry: Registry[int] = Registry("number")
    names = Names(registry.names, "auto")
    assert list(names) == ["auto"] and len(names) == 1
    registry.register("one")(1)
    assert "one" in names and list(names) == ["one", "auto"]
    assert repr(names) == "Names('one', 'auto')"
    assert registry.unregister("one") == 1
    assert "one" not in names
    with pytest.raises(RegistryError, match="not registered"):
        registry.unregister("one")


def test_registry_doctests() -> None:
    result = doctest.testmod(graphxfer.registry, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------- tabular
def test_a_registered_tabular_encoder_is_accepted_everywhere(
    tiny_tabular: str, heart: Cohort, tmp_path: Path
) -> None:
    assert tiny_tabular in graphxfer.encoder.TABULAR_ENCODERS
    assert encoder_kind(tiny_tabular) == "tabular"
    choices = _encoder_choices()
    assert tiny_tabular in choices and tiny_tabular in list(choices)
    _, parsers = build_parser()
    args = parsers["pretrain"].parse_args(["--dataset", "heart-disease", "--encoder", tiny_tabular])
    assert args.encoder == tiny_tabular
    check_distributed_encoder(tiny_tabular)
    check_distributed_encoder(tiny_tabular, streaming=True)  # tabular encoders stream

    encoder = graphxfer.pretrain(
        heart,
        tiny_tabular,
        epochs=1,
        encoder_params={"width": 8, "n_blocks": 1},
        progress=False,
        random_state=0,
    )
    assert (encoder.name, encoder.kind) == (tiny_tabular, "tabular")
    again = load_encoder(encoder.save(tmp_path / "tiny"))
    assert again.name == tiny_tabular
    np.testing.assert_array_equal(again.embed(heart), encoder.embed(heart))


def test_an_unregistered_encoder_is_refused_everywhere(heart: Cohort) -> None:
    name = "not-registered"
    assert encoder_kind(name) is None and name not in EncoderNames("auto")
    with pytest.raises(GraphxferError, match=f"unknown encoder '{name}'; choose one of"):
        graphxfer.pretrain(heart, name)
    with pytest.raises(GraphxferError, match=f"unknown encoder '{name}'"):
        check_distributed_encoder(name)
    _, parsers = build_parser()
    with pytest.raises(UserError, match="--encoder: invalid choice: 'not-registered'"):
        parsers["pretrain"].parse_args(["--encoder", name])


# ----------------------------------------------------------------------------- graph
def test_a_registered_graph_encoder_is_accepted_everywhere(
    tiny_graph: str, heart: Cohort, tmp_path: Path
) -> None:
    assert tiny_graph in graphxfer.encoder.GRAPH_ENCODERS
    assert tiny_graph in graph_encoder_names() and tiny_graph not in ENCODERS
    assert encoder_kind(tiny_graph) == "graph"
    assert tiny_graph in _encoder_choices()
    check_distributed_encoder(tiny_graph)
    with pytest.raises(DistributedUnsupportedError, match=f"graph encoder '{tiny_graph}'"):
        check_distributed_encoder(tiny_graph, streaming=True)

    encoder = graphxfer.pretrain(
        heart, tiny_graph, epochs=1, hidden=8, k=5, progress=False, random_state=0
    )
    assert (encoder.name, encoder.kind) == (tiny_graph, "graph")
    again = load_encoder(encoder.save(tmp_path / "tiny-graph.zip"))
    assert again.name == tiny_graph
    np.testing.assert_allclose(again.embed(heart), encoder.embed(heart), rtol=0, atol=1e-6)
