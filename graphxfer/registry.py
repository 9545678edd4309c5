"""The encoders graphxfer knows, by name: one registry per kind, every list derived from them.

* Tabular encoder networks register in :data:`tabular.registry.ENCODERS` (``ft-transformer``,
  ``linear``, ``mlp``, ``tabnet``, when :mod:`tabular.encoders` is imported).
* Graph encoder networks register in :data:`GRAPH_NETWORKS` (``gat``, ``gin``, ``graphsage``,
  when :mod:`graphxfer.graphs` is imported, which needs PyG).

The functions below read the registries after importing the built-in networks, so that an
encoder registered under a new name is accepted everywhere a name is: :func:`graphxfer.pretrain`,
:func:`graphxfer.load_encoder`, ``graphxfer pretrain --encoder`` and distributed pretraining.
A name is looked up among the tabular encoders first; graph networks are imported only when
a name is not a tabular encoder, or when every name is listed. :class:`Names` (and
:class:`EncoderNames`) are live views of registered names for lists made before a name may be
registered, such as the choices of a command-line option.

Examples
--------
>>> from graphxfer.registry import encoder_kind, tabular_encoder_names
>>> encoder_kind("mlp"), encoder_kind("gin"), encoder_kind("nope")
('tabular', 'graph', None)
>>> "ft-transformer" in tabular_encoder_names()
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Iterable, Iterator

from tabular.registry import Registry

__all__ = [
    "GRAPH_NETWORKS",
    "EncoderNames",
    "Names",
    "encoder_kind",
    "encoder_kinds",
    "encoder_names",
    "graph_encoder_names",
    "tabular_encoder_names",
]

GRAPH_NETWORKS: Registry[type] = Registry("graph encoder")
"""Graph encoder network classes (subclasses of :class:`graphxfer.graphs.GNNEncoder`) by name."""


def tabular_encoder_names() -> tuple[str, ...]:
    """The names in :data:`tabular.registry.ENCODERS`, sorted, the built-in networks included."""
    importlib.import_module("tabular.encoders")  # registers the built-in networks
    from tabular.registry import ENCODERS

    return tuple(ENCODERS.names())


def graph_encoder_names() -> tuple[str, ...]:
    """The names in :data:`GRAPH_NETWORKS`, sorted; the built-in networks when PyG is installed."""
    try:
        importlib.import_module("graphxfer.graphs")  # registers the built-in networks
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("torch_geometric"):
            raise
    return tuple(GRAPH_NETWORKS.names())


def encoder_names() -> tuple[str, ...]:
    """Every registered encoder name: the tabular ones, then the graph ones."""
    return tabular_encoder_names() + graph_encoder_names()


def encoder_kind(name: str) -> str | None:
    """``"tabular"`` or ``"graph"``: the registry that holds ``name``; None when neither does."""
    if name in tabular_encoder_names():
        return "tabular"
    if name in graph_encoder_names():
        return "graph"
    return None


def encoder_kinds() -> dict[str, str]:
    """Every registered encoder name and its kind (``"tabular"`` or ``"graph"``), sorted."""
    kinds = {name: "graph" for name in graph_encoder_names()}
    kinds.update({name: "tabular" for name in tabular_encoder_names()})
    return dict(sorted(kinds.items()))


class Names(Collection[str]):
    """Names read anew from a registry at every use, plus fixed ``extra`` ones.

    For lists made before a name may be registered, such as ``argparse`` ``choices``:
    membership and iteration always reflect the registry.

    Parameters
    ----------
    read : callable
        Returns the registered names.
    *extra : str
        Further names, listed after the registered ones.

    Examples
    --------
    >>> registered = ["a", "b"]
    >>> names = Names(lambda: registered, "auto")
    >>> registered.append("c")
    >>> list(names), "c" in names
    (['a', 'b', 'c', 'auto'], True)
    """

    def __init__(self, read: Callable[[], Iterable[str]], *extra: str) -> None:
        self.read = read
        self.extra = extra

    def names(self) -> tuple[str, ...]:
        """The names now: the registered ones, then ``extra``."""
        return (*self.read(), *self.extra)

    def __contains__(self, name: object) -> bool:
        return name in self.extra or name in tuple(self.read())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.names()!r}"


class EncoderNames(Names):
    """The registered encoder names (tabular, then graph) plus ``extra`` ones, read anew at
    every use; testing a tabular name never imports the graph networks.

    Parameters
    ----------
    *extra : str
        Further accepted names (e.g. ``"auto"``), listed after the encoders.

    Examples
    --------
    >>> choices = EncoderNames("auto")
    >>> "mlp" in choices, "auto" in choices, "nope" in choices
    (True, True, False)
    >>> list(choices)[-1]
    'auto'
    """

    def __init__(self, *extra: str) -> None:
        super().__init__(encoder_names, *extra)

    def __contains__(self, name: object) -> bool:
        if name in self.extra:
            return True
        return isinstance(name, str) and encoder_kind(name) is not None
