"""Pretraining objectives: masked-feature reconstruction, SCARF-style contrast, supervised.

An objective owns the small heads it needs (decoder, projection, outcome head) and computes a
loss for one mini-batch of featurizer output. Objectives are registered by name in
:data:`OBJECTIVES`; :func:`tabular.pretrain` looks them up there.

Randomness (which values are masked, which rows donate replacement values) comes from the
``generator`` passed to :meth:`Objective.loss`, a CPU ``torch.Generator``, so runs are
reproducible on any device.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from tabular.encoders import EncoderNetwork
from tabular.exceptions import PretrainingError
from tabular.featurizer import Featurizer
from tabular.registry import Registry

__all__ = [
    "OBJECTIVES",
    "ContrastiveCorruption",
    "MaskedReconstruction",
    "Objective",
    "Supervised",
    "SupervisedMasked",
]

OBJECTIVES: Registry[type[Objective]] = Registry("pretraining objective")
"""Objective classes by name: ``masked``, ``contrastive``, ``supervised``, ``supervised+masked``."""

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _uniform(
    shape: tuple[int, ...], generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device)


class Objective(nn.Module):
    """Base class: a pretraining loss and the heads it trains alongside the encoder.

    Parameters
    ----------
    network : EncoderNetwork
        The encoder being pretrained (only its ``out_dim`` is read here).
    featurizer : Featurizer
        The fitted featurizer (for column counts and cardinalities).
    mask_rate : float
        Share of values masked or corrupted (objectives that mask nothing ignore it).
    """

    needs_outcome: ClassVar[bool] = False
    """Whether the objective needs the source outcome ``y``."""
    min_batch: ClassVar[int] = 1
    """Smaller training batches are skipped (a contrastive loss needs two rows)."""

    def __init__(
        self, network: EncoderNetwork, featurizer: Featurizer, *, mask_rate: float
    ) -> None:
        super().__init__()
        if not 0.0 <= mask_rate < 1.0:
            raise PretrainingError(f"mask_rate must be in [0, 1), got {mask_rate}")
        self.mask_rate = float(mask_rate)

    def loss(
        self,
        network: EncoderNetwork,
        batch: Batch,
        y: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The mean loss of one mini-batch ``(numeric, missing, categorical)``."""
        raise NotImplementedError


@OBJECTIVES.register("masked")
class MaskedReconstruction(Objective):
    """Masked-feature reconstruction.

    A random share (``mask_rate``) of the values is hidden — a hidden numeric value becomes
    "missing" (value 0, flag set), a hidden category becomes index 0 ("missing") — and a small
    decoder reconstructs them from the embedding: squared error on hidden numeric values that
    were observed, cross-entropy on hidden categories that were observed. The loss is the mean
    over the reconstructed entries. This is TabNet's pretraining task (random obfuscation of
    inputs, reconstruction of the hidden ones) applied to any encoder.

    Parameters
    ----------
    decoder_hidden : int, optional
        Hidden size of the decoder (default: ``max(out_dim, 32)``).
    """

    def __init__(
        self,
        network: EncoderNetwork,
        featurizer: Featurizer,
        *,
        mask_rate: float = 0.3,
        decoder_hidden: int | None = None,
    ) -> None:
        super().__init__(network, featurizer, mask_rate=mask_rate)
        if mask_rate <= 0:
            raise PretrainingError("masked reconstruction needs mask_rate > 0")
        hidden = decoder_hidden or max(network.out_dim, 32)
        self.trunk = nn.Sequential(nn.Linear(network.out_dim, hidden), nn.GELU())
        p = len(featurizer.numeric_columns_)
        self.numeric_head = nn.Linear(hidden, p) if p else None
        self.categorical_heads = nn.ModuleList(
            nn.Linear(hidden, card) for card in featurizer.cardinalities_
        )

    def corrupt(
        self, batch: Batch, generator: torch.Generator
    ) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """The masked batch, and the masks of hidden numeric and categorical entries."""
        numeric, missing, categorical = batch
        hide_num = _uniform(tuple(numeric.shape), generator, numeric.device) < self.mask_rate
        hide_cat = _uniform(tuple(categorical.shape), generator, numeric.device) < self.mask_rate
        masked = (
            numeric.masked_fill(hide_num, 0.0),
            missing | hide_num,
            categorical.masked_fill(hide_cat, 0),
        )
        return masked, hide_num, hide_cat

    def loss(
        self,
        network: EncoderNetwork,
        batch: Batch,
        y: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        numeric, missing, categorical = batch
        masked, hide_num, hide_cat = self.corrupt(batch, generator)
        h = self.trunk(network(*masked))
        total = h.new_zeros(())
        count = h.new_zeros(())
        if self.numeric_head is not None:
            target = (hide_num & ~missing).to(h.dtype)
            total = total + ((self.numeric_head(h) - numeric) ** 2 * target).sum()
            count = count + target.sum()
        for k, head in enumerate(self.categorical_heads):
            rows = hide_cat[:, k] & (categorical[:, k] != 0)
            if bool(rows.any()):
                logits = head(h[rows])
                total = total + F.cross_entropy(logits, categorical[rows, k], reduction="sum")
                count = count + rows.sum()
        return total / count.clamp(min=1.0)


@OBJECTIVES.register("contrastive")
class ContrastiveCorruption(Objective):
    """SCARF-style contrastive pretraining.

    Each record's corrupted view replaces a random share (``mask_rate``) of its columns by the
    values of the same columns in other, randomly chosen records of the batch (a draw from the
    empirical marginals). A projection head maps the embeddings of the record and its view to
    a unit sphere; the loss is the symmetric InfoNCE that pairs each record with its own view
    against the other records of the batch.

    Parameters
    ----------
    temperature : float, default=0.5
    projection_dim : int, optional
        Size of the projection (default: ``out_dim``).
    """

    min_batch = 2

    def __init__(
        self,
        network: EncoderNetwork,
        featurizer: Featurizer,
        *,
        mask_rate: float = 0.3,
        temperature: float = 0.5,
        projection_dim: int | None = None,
    ) -> None:
        super().__init__(network, featurizer, mask_rate=mask_rate)
        if temperature <= 0:
            raise PretrainingError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        d = network.out_dim
        k = projection_dim or d
        self.projection = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, k))

    def corrupt(self, batch: Batch, generator: torch.Generator) -> Batch:
        """Replace a random share of each record's values by other records' values."""
        numeric, missing, categorical = batch
        n = numeric.shape[0]
        dev = numeric.device

        def swap(values: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
            shape = tuple(values.shape)
            replace = _uniform(shape, generator, dev) < self.mask_rate
            donors = torch.randint(0, n, shape, generator=generator).to(dev)
            out = [torch.where(replace, torch.gather(values, 0, donors), values)]
            out += [torch.where(replace, torch.gather(o, 0, donors), o) for o in others]
            return tuple(out)

        num, miss = swap(numeric, missing)
        (cat,) = swap(categorical)
        return num, miss, cat

    def loss(
        self,
        network: EncoderNetwork,
        batch: Batch,
        y: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        view = self.corrupt(batch, generator)
        z = F.normalize(self.projection(network(*batch)), dim=1)
        z_view = F.normalize(self.projection(network(*view)), dim=1)
        logits = z @ z_view.T / self.temperature
        target = torch.arange(z.shape[0], device=z.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


@OBJECTIVES.register("supervised")
class Supervised(Objective):
    """Supervised pretraining on the source outcome: a linear head and binary cross-entropy.

    The trained head is kept (``TabularEncoder.source_head_``) so that fine-tuning can start
    from the source classifier.
    """

    needs_outcome = True

    def __init__(
        self, network: EncoderNetwork, featurizer: Featurizer, *, mask_rate: float = 0.3
    ) -> None:
        super().__init__(network, featurizer, mask_rate=mask_rate)
        self.head = nn.Linear(network.out_dim, 1)

    def loss(
        self,
        network: EncoderNetwork,
        batch: Batch,
        y: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        if y is None:
            raise PretrainingError("the supervised objective needs the source outcome y")
        logits = self.head(network(*batch)).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, y)


@OBJECTIVES.register("supervised+masked")
class SupervisedMasked(Objective):
    """Supervised loss + ``masked_weight`` × masked-reconstruction loss.

    Parameters
    ----------
    masked_weight : float, default=1.0
        Weight λ of the reconstruction term.
    decoder_hidden : int, optional
        Passed to :class:`MaskedReconstruction`.
    """

    needs_outcome = True

    def __init__(
        self,
        network: EncoderNetwork,
        featurizer: Featurizer,
        *,
        mask_rate: float = 0.3,
        masked_weight: float = 1.0,
        decoder_hidden: int | None = None,
    ) -> None:
        super().__init__(network, featurizer, mask_rate=mask_rate)
        if masked_weight < 0:
            raise PretrainingError(f"masked_weight must be >= 0, got {masked_weight}")
        self.masked_weight = float(masked_weight)
        self.supervised = Supervised(network, featurizer, mask_rate=mask_rate)
        self.masked = MaskedReconstruction(
            network, featurizer, mask_rate=mask_rate, decoder_hidden=decoder_hidden
        )

    @property
    def head(self) -> nn.Linear:
        """The outcome head."""
        return self.supervised.head

    def loss(
        self,
        network: EncoderNetwork,
        batch: Batch,
        y: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        supervised = self.supervised.loss(network, batch, y, generator)
        masked = self.masked.loss(network, batch, y, generator)
        return supervised + self.masked_weight * masked


def make_objective(
    name: str,
    network: EncoderNetwork,
    featurizer: Featurizer,
    *,
    mask_rate: float,
    params: dict[str, Any] | None = None,
) -> Objective:
    """Build the objective registered as ``name``."""
    cls = OBJECTIVES.get(name)
    try:
        return cls(network, featurizer, mask_rate=mask_rate, **(params or {}))
    except TypeError as exc:
        raise PretrainingError(f"bad parameters for objective {name!r}: {exc}") from exc
