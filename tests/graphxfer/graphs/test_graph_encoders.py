"""GNN encoder networks: registry, configuration, state round trip, no BatchNorm."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from graphxfer.exceptions import GraphError
from graphxfer.graphs import GATEncoder, GINEncoder, GNNEncoder, GraphSAGEEncoder
from graphxfer.graphs._utils import init_parameters
from graphxfer.registry import GRAPH_NETWORKS
from tabular.registry import ENCODERS

CLASSES = {"graphsage": GraphSAGEEncoder, "gat": GATEncoder, "gin": GINEncoder}


@pytest.mark.parametrize("name", list(CLASSES))
def test_registered_and_configurable(name: str) -> None:
    cls = CLASSES[name]
    assert GRAPH_NETWORKS.get(name) is cls
    assert name not in ENCODERS  # the tabular registry holds tabular networks only
    net = cls(7, hidden=12, layers=3)
    init_parameters(net, torch.Generator().manual_seed(0))
    config = json.loads(json.dumps(net.config()))
    assert config["name"] == name
    again = GNNEncoder.from_config(config)
    assert type(again) is cls and again.config() == net.config()
    tensors, meta = net.to_state()
    loaded = cls.from_state(tensors, json.loads(json.dumps(meta)))
    x = torch.randn(9, 7, generator=torch.Generator().manual_seed(1))
    edges = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8, 0]])
    assert torch.equal(loaded.embed(x, edges), net.embed(x, edges))
    assert net.embed(x, edges).shape == (9, 12)
    assert len(net.blocks) == 4
    block_params = {id(p) for b in net.blocks for p in b.parameters()}
    assert block_params == {id(p) for p in net.parameters()}


@pytest.mark.parametrize("name", list(CLASSES))
def test_layer_norm_and_no_batch_norm(name: str) -> None:
    net = CLASSES[name](4)
    modules = list(net.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules)
    assert sum(isinstance(m, nn.LayerNorm) for m in modules) >= 3


def test_config_errors() -> None:
    with pytest.raises(GraphError, match="not a graph encoder"):
        GNNEncoder.from_config({"name": "nope", "in_channels": 3})
    with pytest.raises(GraphError, match="describes"):
        GINEncoder.from_config({"name": "gat", "in_channels": 3})
    with pytest.raises(GraphError, match="malformed"):
        GNNEncoder.from_config({"name": "gin"})
    with pytest.raises(GraphError, match="activation"):
        GINEncoder(3, activation="tanh")
    with pytest.raises(GraphError, match="do not match"):
        GINEncoder.from_state({}, {"config": GINEncoder(3).config()})
    with pytest.raises(GraphError, match="shape"):
        GINEncoder(3)(torch.zeros(2, 4), torch.tensor([[0], [1]]))
