"""Pretraining a tabular encoder on a source cohort."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from tabular._data import as_frame, outcome, resolve_columns
from tabular._torch import iter_batches, seed_from, seeded
from tabular.distributed import distributed_info, train_ddp
from tabular.encoders import EncoderNetwork
from tabular.exceptions import PretrainingError
from tabular.featurizer import Featurizer
from tabular.loop import EpochResult, best_val_loss, check_options, resolve_device, run_epochs
from tabular.objectives import OBJECTIVES, Objective, make_objective
from tabular.registry import ENCODERS
from tabular.tabular_encoder import TabularEncoder

__all__ = ["pretrain"]

_MIN_ROWS = 10


def pretrain(
    data: Any,
    *,
    columns: Iterable[Any] | None = None,
    y: Any = None,
    encoder: str = "ft-transformer",
    objective: str = "masked",
    encoder_params: dict[str, Any] | None = None,
    objective_params: dict[str, Any] | None = None,
    epochs: int = 50,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    mask_rate: float = 0.3,
    validation_fraction: float = 0.15,
    patience: int = 5,
    random_state: int | np.random.Generator | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    groups: Any = None,
) -> TabularEncoder:
    """Pretrain a tabular encoder on source data.

    The featurizer is fitted on ``data`` (the source), the network is built from its layout,
    and the network and the objective's heads are trained with AdamW on mini-batches of the
    featurizer output. A random ``validation_fraction`` of the rows is held out; training stops
    when the validation loss has not improved for ``patience`` epochs, and the weights of the
    best epoch are restored.

    Under ``torchrun`` (``torch.distributed`` initialised with two or more processes) every
    process computes its share of each global batch of ``batch_size`` rows and gradients are
    averaged with DistributedDataParallel (:mod:`tabular.distributed`).

    Parameters
    ----------
    data : DataFrame or cohort-like
        Source records: a data frame, or an object with an ``X`` data frame, a ``y`` outcome
        and ``schema.features`` (e.g. ``graphxfer.Cohort``).
    columns : iterable of column-like objects, dicts or names, optional
        Feature columns. Default: ``data.schema.features`` for a cohort, every column (kinds
        inferred from dtypes) for a data frame.
    y : array-like of 0/1, optional
        Source outcome for the supervised objectives (default: ``data.y`` for a cohort);
        self-supervised objectives ignore it.
    encoder : str, default="ft-transformer"
        Name in :data:`tabular.registry.ENCODERS`: ``"ft-transformer"``, ``"mlp"``, ``"tabnet"``.
    objective : str, default="masked"
        ``"masked"`` (reconstruct hidden values), ``"contrastive"`` (SCARF-style InfoNCE),
        ``"supervised"`` (BCE on ``y``), ``"supervised+masked"`` (BCE + λ·masked; set λ with
        ``objective_params={"masked_weight": ...}``).
    encoder_params : dict, optional
        Keyword arguments of the network (e.g. ``{"d_token": 64, "n_layers": 3}``).
    objective_params : dict, optional
        Keyword arguments of the objective (e.g. ``temperature``, ``masked_weight``).
    epochs : int, default=50
    batch_size : int, default=256
    lr : float, default=1e-3
    weight_decay : float, default=1e-5
    mask_rate : float, default=0.3
        Share of values hidden (masked) or replaced (contrastive).
    validation_fraction : float, default=0.15
        Share of rows held out for early stopping; 0 trains on all rows for ``epochs``.
    patience : int, default=5
        Epochs without a better validation loss before stopping.
    random_state : int or numpy Generator, optional
        Seeds the split, the shuffling, the masks, the initialisation and dropout. Torch's
        global generators are forked for the call and restored afterwards.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when present. The returned encoder's network is on the CPU.
    progress : bool, default=True
        Show a progress bar over epochs.
    groups : array-like, optional
        The site (group) of each row. Given, the supervised logistic regression of the linear
        encoder gets one intercept per site (*site intercepts*): its coefficients then describe
        differences between records *within* a site, which is what ranks records at a new
        site, instead of also absorbing differences between the sites' outcome rates (a
        feature that is missing at one site only, for instance, would otherwise act as that
        site's indicator). The site intercepts are not penalised (fixed effects; the L2
        penalty then leaves a feature that is constant within every site at 0); after the
        fit the single intercept of the returned head is re-estimated on every row with the
        coefficients held fixed. Only for ``encoder="linear"`` with
        ``objective="supervised"`` (the exact fit), outside ``torchrun``; one distinct site is
        the same as none.

    Returns
    -------
    TabularEncoder
        With ``history_`` (one dict per epoch: ``epoch``, ``train_loss``, ``val_loss``,
        ``seconds``) and ``source_summary_``.

    Raises
    ------
    PretrainingError
        Invalid options, too few rows, a missing or non-binary outcome for a supervised
        objective, or a loss that is not finite.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.choice(["x", "y"], 200)})
    >>> enc = pretrain(df, encoder="mlp", encoder_params={"width": 16}, epochs=2,
    ...                random_state=0, progress=False, device="cpu")
    >>> enc.embed(df.head(3)).shape
    (3, 16)
    """
    check_options(epochs, batch_size, lr, weight_decay, validation_fraction, patience)
    network_cls = ENCODERS.get(encoder)  # an unknown name raises with the list of names
    if not (isinstance(network_cls, type) and issubclass(network_cls, EncoderNetwork)):
        raise PretrainingError(f"{encoder!r} is not a tabular encoder network")
    objective_cls = OBJECTIVES.get(objective)
    # under torchrun (a process group of 2+ processes) train with DistributedDataParallel,
    # one device per process
    info = distributed_info()
    dev = resolve_device(device, local_rank=info.local_rank if info.active else None)
    X = as_frame(data, what="data")
    cols = resolve_columns(data, X, columns)
    if len(X) < _MIN_ROWS:
        raise PretrainingError(f"pretraining needs at least {_MIN_ROWS} source rows, got {len(X)}")
    target = _outcome(data, y, len(X), objective, objective_cls.needs_outcome)
    site_codes = _site_codes(groups, len(X), objective)

    featurizer = Featurizer().fit(X, cols)
    batch = featurizer.transform(X)
    tensors: tuple[torch.Tensor, ...] = tuple(
        torch.as_tensor(a) for a in (batch.numeric, batch.missing, batch.categorical)
    )
    if target is not None:
        tensors = (*tensors, torch.as_tensor(target, dtype=torch.float32))

    seed = seed_from(random_state)
    generator = torch.Generator().manual_seed(seed)
    n = len(X)
    perm = torch.randperm(n, generator=generator)
    n_val = 0
    if validation_fraction > 0:
        n_val = max(objective_cls.min_batch, round(validation_fraction * n))
    val_idx, train_idx = perm[:n_val], perm[n_val:]

    world = info.world_size
    trainer = train_ddp if world > 1 else _train
    with seeded(seed, dev):
        network = network_cls.from_featurizer(featurizer, **(encoder_params or {}))
        obj = make_objective(
            objective, network, featurizer, mask_rate=mask_rate, params=objective_params
        )
        if site_codes is not None and (
            any(p.requires_grad for p in network.parameters()) or info.world_size > 1
        ):
            raise PretrainingError(
                f"groups (site intercepts) need the exact logistic fit of encoder='linear' "
                f"with objective='supervised' outside torchrun; encoder {encoder!r} is trained "
                "by stochastic gradient descent"
            )
        network.to(dev)
        obj.to(dev)
        history, best_epoch = trainer(
            network,
            obj,
            tensors,
            train_idx,
            val_idx,
            dev,
            generator=generator,
            val_seed=seed ^ 0x5F3759DF,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            patience=patience,
            progress=progress,
            label=f"pretrain {encoder} ({objective})",
        )
    network.cpu().eval()
    obj.cpu()
    head = getattr(obj, "head", None) if objective_cls.needs_outcome else None
    exact = (
        objective == "supervised"
        and isinstance(head, torch.nn.Linear)
        and not any(p.requires_grad for p in network.parameters())
        and target is not None
        and world == 1
    )
    if exact and isinstance(head, torch.nn.Linear):
        # a network without parameters makes supervised pretraining a logistic regression:
        # convex, so fit it exactly (every row, L-BFGS, L2 = weight_decay) instead of
        # stopping a stochastic optimiser wherever early stopping lands
        _fit_linear_head(network, head, tensors, weight_decay, site_codes)
    summary = {
        "n_rows": n,
        "n_train": len(train_idx),
        "n_validation": len(val_idx),
        "n_columns": len(cols),
        "encoder": encoder,
        "objective": objective,
        "encoder_params": dict(encoder_params or {}),
        "objective_params": dict(objective_params or {}),
        "mask_rate": float(mask_rate),
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_val_loss": best_val_loss(history, best_epoch),
        "device": dev.type,
        "world_size": world,
    }
    summary["outcome_used"] = target is not None
    if site_codes is not None:
        summary["site_intercepts"] = int(site_codes.max()) + 1
    if target is not None:
        summary["positive_rate"] = float(np.mean(target))
    return TabularEncoder(
        featurizer,
        network,
        columns=cols,
        history=history,
        source_summary=summary,
        source_head=copy.deepcopy(head) if head is not None else None,
    )


def _fit_linear_head(
    network: Any,
    head: torch.nn.Linear,
    tensors: Any,
    l2: float,
    site_codes: np.ndarray | None = None,
) -> None:
    """Minimise ``mean BCE + l2/2 * |w|^2`` (bias not penalised) over a linear head, exactly.

    With ``site_codes`` (one integer per row) the common bias is replaced by one unpenalised
    intercept per site; then the bias alone is refitted on every row with ``w`` fixed.
    """
    import torch.nn.functional as F

    numeric, missing, categorical, y = tensors[0], tensors[1], tensors[2], tensors[-1]
    with torch.no_grad():
        z = network(numeric, missing, categorical).double()
    target = y.double().reshape(-1)
    w = head.weight.detach().double().clone().reshape(-1)
    b = head.bias.detach().double().clone().reshape(-1)
    w.requires_grad_(True)
    b.requires_grad_(True)
    params = [w, b]
    offset: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    if site_codes is not None:
        # one unpenalised intercept per site (fixed effects) in place of the common one
        codes = torch.as_tensor(site_codes, dtype=torch.long)
        offset = torch.zeros(int(codes.max()) + 1, dtype=torch.float64, requires_grad=True)
        params = [w, offset]

    def minimise(variables: list[torch.Tensor], loss_fn: Any) -> None:
        opt = torch.optim.LBFGS(
            variables, lr=1.0, max_iter=500, line_search_fn="strong_wolfe", tolerance_grad=1e-10
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)

    def full_loss() -> torch.Tensor:
        logit = z @ w + (b if offset is None or codes is None else offset[codes])
        return F.binary_cross_entropy_with_logits(logit, target) + 0.5 * l2 * (w @ w)

    minimise(params, full_loss)
    if offset is not None:
        # the head serves sites it has not seen: one intercept for all, fitted on every row
        # with the within-site coefficients held fixed
        w.requires_grad_(False)
        fixed = (z @ w).detach()
        minimise([b], lambda: F.binary_cross_entropy_with_logits(fixed + b, target))
    with torch.no_grad():
        head.weight.copy_(w.reshape(head.weight.shape).to(head.weight.dtype))
        head.bias.copy_(b.reshape(head.bias.shape).to(head.bias.dtype))


def _site_codes(groups: Any, n: int, objective: str) -> np.ndarray | None:
    """``groups`` as integer codes 0..k-1 (None when not given or a single site)."""
    if groups is None:
        return None
    if objective != "supervised":
        raise PretrainingError(
            f"groups (site intercepts) need objective='supervised', got {objective!r}"
        )
    import pandas as pd

    values = pd.Series(np.asarray(groups, dtype=object).reshape(-1))
    if len(values) != n:
        raise PretrainingError(f"groups has {len(values)} values but the data has {n} rows")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise PretrainingError(f"groups is missing at row {row}; every row needs its site")
    codes, uniques = pd.factorize(values.astype(str), sort=True)
    return None if len(uniques) < 2 else codes.astype(np.int64)


def _outcome(data: Any, y: Any, n: int, objective: str, needed: bool) -> np.ndarray | None:
    if not needed:
        return None  # self-supervised objectives do not read the outcome
    values = np.asarray(y) if y is not None else outcome(data)
    if values is None:
        raise PretrainingError(
            f"objective {objective!r} needs the source outcome: pass y=..., or a cohort with "
            "a target column"
        )
    values = values.reshape(-1)
    if len(values) != n:
        raise PretrainingError(f"y has {len(values)} values but the data has {n} rows")
    try:
        numeric = values.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise PretrainingError("y must hold 0/1 values") from exc
    if not np.isin(numeric, (0.0, 1.0)).all():
        bad = np.unique(values[~np.isin(numeric, (0.0, 1.0))])[:5]
        raise PretrainingError(f"y must hold 0/1 values only; found {bad.tolist()}")
    if len(np.unique(numeric)) < 2:
        raise PretrainingError("y holds a single class; supervised pretraining needs both")
    return numeric.astype(np.float32)


def _epoch_loss(
    network: EncoderNetwork,
    obj: Objective,
    tensors: tuple[torch.Tensor, ...],
    order: torch.Tensor,
    dev: torch.device,
    batch_size: int,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer | None,
) -> float:
    """Mean loss over ``order``; one optimisation step per batch when ``optimizer`` is given."""
    total, count = 0.0, 0
    for part in iter_batches(tensors, order, batch_size, dev):
        numeric, missing, categorical = part[:3]
        y = part[3] if len(part) > 3 else None
        rows = numeric.shape[0]
        if rows < obj.min_batch:
            continue
        loss = obj.loss(network, (numeric, missing, categorical), y, generator)
        if not torch.isfinite(loss):
            raise PretrainingError(
                f"the pretraining loss is not finite ({loss.item()}); lower lr (now "
                "too high?) or check the data for extreme values"
            )
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        total += float(loss.detach()) * rows
        count += rows
    return total / count if count else math.nan


def _train(
    network: EncoderNetwork,
    obj: Objective,
    tensors: tuple[torch.Tensor, ...],
    train_idx: torch.Tensor,
    val_idx: torch.Tensor,
    dev: torch.device,
    *,
    generator: torch.Generator,
    val_seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    patience: int,
    progress: bool,
    label: str,
) -> tuple[list[dict[str, Any]], int]:
    params = [p for p in (*network.parameters(), *obj.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def epoch_fn(epoch: int, advance: Any) -> EpochResult:
        network.train()
        obj.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        train_loss = _epoch_loss(
            network, obj, tensors, order, dev, batch_size, generator, optimizer
        )
        val_loss: float | None = None
        if len(val_idx):
            network.eval()
            obj.eval()
            with torch.no_grad():
                # the same masks every epoch, so validation losses are comparable
                val_gen = torch.Generator().manual_seed(val_seed)
                loss = _epoch_loss(network, obj, tensors, val_idx, dev, batch_size, val_gen, None)
            val_loss = None if math.isnan(loss) else loss
        return EpochResult(train_loss=train_loss, val_loss=val_loss)

    return run_epochs(
        epoch_fn,
        epochs=epochs,
        patience=patience,
        modules=(network, obj),
        desc=label,
        progress=progress,
    )
