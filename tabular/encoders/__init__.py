"""Tabular encoder networks, registered by name in :data:`tabular.registry.ENCODERS`.

========================  ==========================================================
name                      network
========================  ==========================================================
``"ft-transformer"``      :class:`FTTransformer`: one token per column, [CLS], attention
``"linear"``              :class:`LinearFeatures`: the flat feature vector (logistic regression)
``"mlp"``                 :class:`ResidualMLP`: per-column first layer, residual blocks
``"tabnet"``              :class:`TabNetNetwork`: pytorch-tabnet's encoder, LayerNorm only
========================  ==========================================================

Every network maps ``(numeric, missing, categorical)`` (the featurizer output as tensors) to
an ``(n, out_dim)`` embedding, has ``blocks`` (its stages, input to output), ``config()`` /
``from_config()`` for JSON, ``add_columns()`` and ``set_absent()`` for another schema.
"""

from __future__ import annotations

from typing import Any

from tabular.encoders._base import ColumnTokenizer, EncoderNetwork
from tabular.encoders.ft_transformer import FTTransformer
from tabular.encoders.linear import LinearFeatures
from tabular.encoders.mlp import ResidualMLP
from tabular.encoders.tabnet import TabNetNetwork
from tabular.exceptions import EncoderError
from tabular.registry import ENCODERS

__all__ = [
    "ColumnTokenizer",
    "EncoderNetwork",
    "FTTransformer",
    "LinearFeatures",
    "ResidualMLP",
    "TabNetNetwork",
    "network_from_config",
]


def network_from_config(config: dict[str, Any]) -> EncoderNetwork:
    """Rebuild an (untrained) encoder network from its ``config()``, looked up by ``name``."""
    if not isinstance(config, dict) or "name" not in config:
        raise EncoderError("an encoder config is a dict with a 'name' key")
    cls = ENCODERS.get(config["name"])
    if not (isinstance(cls, type) and issubclass(cls, EncoderNetwork)):
        raise EncoderError(f"encoder {config['name']!r} is not a tabular encoder network")
    return cls.from_config(config)
