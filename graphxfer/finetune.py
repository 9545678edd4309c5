"""Fine-tuning an encoder on aligned target records: the plan, the run and the privacy ledger.

The steps of :meth:`TransferClassifier.fit <graphxfer.TransferClassifier.fit>` around the
alignment of the target (:mod:`graphxfer.adapt`):

- :func:`check_params`: the estimator's parameters, checked when ``fit`` starts, with one
  uniform message for options outside their choices;
- :func:`plan_fit`: hyper-parameters and the split of the privacy budget, from public facts
  only (the encoder's presets, the number of persons and the requested epsilon);
- :func:`fit_aligned`: one fine-tuning run (anchored, linear probe, full, partial or LP-FT,
  with or without differential privacy);
- :class:`FitLedger`: the privacy ledger a private fit charges, opened once per fit (the
  budget is checked before any step) and settled at its end (a ledger file is written back
  atomically).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from graphxfer.cohort import Cohort
from graphxfer.encoder import Encoder, load_encoder
from graphxfer.exceptions import GraphxferError
from graphxfer.schema import Column

__all__ = [
    "STRATEGIES",
    "FitLedger",
    "check_params",
    "fit_aligned",
    "module_proba",
    "person_index",
    "plan_fit",
    "settle",
    "torch_seeded",
    "training_summary",
]

STRATEGIES = ("anchored", "linear-probe", "full", "partial", "lp-ft")
"""The fine-tuning strategies of :class:`~graphxfer.TransferClassifier`."""

_CHOICES: dict[str, tuple[Any, ...]] = {
    "strategy": STRATEGIES,
    "on_negative_transfer": ("warn", "fallback"),
    "baseline": ("xgboost", "logistic"),
    "dp_hyperparameters": ("auto", "config"),
    "check_transfer": (None, True, False),
}


# ---------------------------------------------------------------------- the parameters
def check_params(model: Any) -> Encoder:
    """Check the parameters of a :class:`~graphxfer.TransferClassifier` before a fit.

    Returns
    -------
    Encoder
        The pretrained encoder (read from its path when ``encoder`` is one).

    Raises
    ------
    GraphxferError
        Naming the parameter, its value and what it may be.
    """
    if model.encoder is None:
        raise GraphxferError(
            "TransferClassifier needs a pretrained encoder: "
            "TransferClassifier(graphxfer.pretrain(source_cohort))"
        )
    if isinstance(model.encoder, (str, os.PathLike)):
        encoder = load_encoder(model.encoder)
    elif isinstance(model.encoder, Encoder):
        encoder = model.encoder
    else:
        raise GraphxferError(
            f"encoder must be a graphxfer.Encoder or a path, got {type(model.encoder).__name__}"
        )
    for name, choices in _CHOICES.items():
        if getattr(model, name) not in choices:
            raise GraphxferError(f"{name}={getattr(model, name)!r} is not one of {choices}")
    if model.privacy is not None:
        from privacy import PrivacyConfig

        if not isinstance(model.privacy, PrivacyConfig):
            raise GraphxferError(
                f"privacy must be a privacy.PrivacyConfig or None, got "
                f"{type(model.privacy).__name__}"
            )
    for name in ("epochs", "batch_size", "partial_blocks"):
        value = getattr(model, name)
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise GraphxferError(f"{name}={value!r} must be a positive integer")
    if not model.learning_rate > 0:
        raise GraphxferError(f"learning_rate={model.learning_rate!r} must be > 0")
    alpha = model.alpha
    if alpha is not None and not (
        isinstance(alpha, (int, float)) and np.isfinite(alpha) and alpha >= 0
    ):
        raise GraphxferError(f"alpha={alpha!r} must be a number >= 0 or None")
    fraction = model.guard_fraction
    if not (isinstance(fraction, (int, float)) and 0 < fraction < 1):
        raise GraphxferError(f"guard_fraction={fraction!r} must be a number in (0, 1)")
    return encoder


# ---------------------------------------------------------------------- the plan
def plan_fit(model: Any, encoder: Encoder, n: int) -> dict[str, Any]:
    """Hyper-parameters and budget split of a fit of ``model`` on ``n`` persons.

    Public facts only: the estimator's parameters, the encoder's presets, ``n`` and the
    requested epsilon.

    Returns
    -------
    dict
        ``config`` (the privacy config of the fine-tuning, or None), ``alpha`` and ``public``
        (what the model card shows); under privacy also ``guard``, ``prior``,
        ``epsilon_target_only`` and ``epsilon_selection``.
    """
    from graphxfer.tuning import default_hyperparameters, lookup_presets

    n = int(n)
    presets = getattr(encoder, "metadata", {}).get("dp_presets")
    eps = None if model.privacy is None else float(model.privacy.epsilon)
    found = lookup_presets(presets, n, eps)
    public: dict[str, Any] = {"n": n, "strategy": model.strategy}
    if model.privacy is None:
        alpha = model.alpha
        if alpha is None:
            alpha = found["hyperparameters"]["alpha"] if found else 1.0
            public["alpha_source"] = "presets" if found else "default"
        public["alpha"] = float(alpha)
        return {"config": None, "alpha": float(alpha), "public": public}
    cfg = model.privacy
    eps = float(cfg.epsilon)
    guard = model.check_transfer is None or bool(model.check_transfer)
    guard = guard and model.strategy == "anchored"
    prior = None if found is None else found.get("prior")
    g = float(model.guard_fraction) if guard else 0.0
    # the target-only candidate costs budget: it is trained only where the public
    # simulation shows it can win at this size and epsilon
    with_target_only = guard and prior is not None and (prior.get("target-only") or 0.0) >= 0.02
    eps_sel = eps * g / 2 if with_target_only else eps * g
    eps_to = eps * g / 2 if with_target_only else 0.0
    eps_ft = eps - eps_sel - eps_to
    changes: dict[str, Any] = {"epsilon": eps_ft}
    why = "the privacy config as given"
    alpha = model.alpha
    if model.dp_hyperparameters == "auto":
        if model.strategy == "anchored":
            hp = dict(found["hyperparameters"]) if found else default_hyperparameters(n)
            why = (
                f"presets simulated on held-out source sites at n={found['n']}, "
                f"epsilon={found['epsilon']}"
                if found
                else "defaults for small targets (no presets stored with the encoder)"
            )
            if alpha is None:
                alpha = hp["alpha"]
            for key in ("epochs", "learning_rate", "max_grad_norm", "optimizer"):
                changes[key] = hp[key]
            # the simulation's batch is 60% of the records: the same share of this n
            changes["batch_size"] = default_hyperparameters(n)["batch_size"]
        elif cfg.batch_size > n:
            changes["batch_size"] = max(1, n // 2)
            why = f"the privacy config, with batch_size lowered to {n // 2} (n={n})"
    if alpha is None:
        alpha = 1.0
    config = dataclasses.replace(cfg, **changes)
    public.update({
        "source": why,
        "alpha": float(alpha),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "max_grad_norm": config.max_grad_norm,
        "optimizer": config.optimizer,
        "epsilon_fine_tune": eps_ft,
        "epsilon_guard_target_only": eps_to,
        "epsilon_guard_selection": eps_sel,
    })  # fmt: skip
    return {
        "config": config,
        "alpha": float(alpha),
        "public": public,
        "guard": guard,
        "prior": prior,
        "epsilon_target_only": eps_to,
        "epsilon_selection": eps_sel,
    }


# ---------------------------------------------------------------------- the ledger
@dataclasses.dataclass
class FitLedger:
    """The ledger a private fit charges and the label of its data set.

    Attributes
    ----------
    ledger : privacy.PrivacyLedger
        The ``ledger`` parameter itself, the ledger read from the ``ledger`` file (a new one
        when the file does not exist yet), or a new ledger.
    data_id : str
    start : int
        The number of entries before this fit.
    lock : privacy.LedgerLock or None
        With a ledger file: its lock, held from reading the file to writing it back (so that
        concurrent fits on one file compose instead of overwriting each other).
    """

    ledger: Any
    data_id: str
    start: int
    lock: Any = None

    @classmethod
    def open(cls, model: Any, name: str | None) -> FitLedger:
        """The ledger of a private fit of ``model`` on the cohort called ``name``.

        Raises
        ------
        privacy.BudgetExceededError
            When ``privacy.total_budget`` cannot pay for the whole fit (the guard included):
            before any step, with nothing recorded.
        """
        import privacy as dp

        data_id = model.data_id
        if data_id is None:
            data_id = f"target:{name or 'cohort'}"
        elif not isinstance(data_id, str) or not data_id.strip():
            raise GraphxferError(
                f"data_id={data_id!r} must be a non-empty label such as 'hospital-B' (or None)"
            )
        source = model.ledger
        accountant = "rdp" if model.privacy.accountant == "rdp" else "prv"
        lock = None
        if isinstance(source, dp.PrivacyLedger):
            ledger = source
        elif isinstance(source, (str, os.PathLike)):
            if Path(source).is_dir():
                raise GraphxferError(
                    f"ledger={str(source)!r} is a folder; give the path of a ledger JSON file"
                )
            lock = dp.LedgerLock(source).acquire()
            try:
                if Path(source).exists():
                    ledger = dp.PrivacyLedger.load(source)
                else:
                    ledger = dp.PrivacyLedger(accountant=accountant)
                cap = model.privacy.total_budget
                if cap is not None:
                    ledger.check_budget(
                        float(model.privacy.epsilon), total_budget=cap, data_id=data_id
                    )
            except BaseException:
                lock.release()
                raise
            return cls(ledger, data_id, len(ledger), lock)
        elif source is None:
            ledger = dp.PrivacyLedger(accountant=accountant)
        else:
            raise GraphxferError(
                f"ledger must be a privacy.PrivacyLedger, the path of a ledger file or None, "
                f"got {type(source).__name__}"
            )
        cap = model.privacy.total_budget
        if cap is not None:
            ledger.check_budget(float(model.privacy.epsilon), total_budget=cap, data_id=data_id)
        return cls(ledger, data_id, len(ledger))

    def settle(self, path: Any) -> tuple[Any, Any, str]:
        """End of the fit: write the ledger back to ``path`` when it is a path.

        Returns
        -------
        ledger, fit_ledger, data_id
            The data set's entries after this fit, this fit's entries, and the label.
        """
        import privacy as dp

        ledger, data_id = self.ledger, self.data_id
        if isinstance(path, (str, os.PathLike)):
            ledger.save(path)  # still under the file's lock: the fit releases it after
        own = [e for e in ledger.entries[self.start :] if e.data_id == data_id]
        on_data = [e for e in ledger.entries if e.data_id == data_id]
        return (
            dp.PrivacyLedger(on_data, accountant=ledger.accountant, delta=ledger.delta),
            dp.PrivacyLedger(own, accountant=ledger.accountant, delta=ledger.delta),
            data_id,
        )

    def close(self) -> None:
        """Release the ledger file's lock: after the ledger is written back, or unwritten when
        the fit fails."""
        if self.lock is not None:
            self.lock.release()


def settle(ledger: FitLedger | None, path: Any) -> tuple[Any, Any, str | None]:
    """:meth:`FitLedger.settle`, or ``(None, None, None)`` for a fit without DP releases."""
    return (None, None, None) if ledger is None else ledger.settle(path)


def training_summary(aligned: Cohort, name: str | None, *, private: bool) -> dict[str, Any]:
    """The summary of the training records a fitted model keeps (released as
    :func:`graphxfer.release.released_state` allows)."""
    return {
        "n_rows": len(aligned),
        "n_persons": aligned.n_persons,
        "name": name,
        # outcome statistics of private training data are only shown without DP
        "positive_rate": None if private else float(aligned.y.mean()),
        "private": private,
    }


# ---------------------------------------------------------------------- the run
def fit_aligned(
    model: Any,
    encoder: Encoder,
    aligned: Cohort,
    columns: list[Column],
    *,
    random_state: int | None,
    progress: bool,
    plan: dict[str, Any] | None = None,
    ledger: FitLedger | None = None,
) -> tuple[Encoder, Any, Any, Any]:
    """Fine-tune a copy of ``encoder`` on ``aligned`` as ``model``'s parameters say.

    Parameters
    ----------
    model : TransferClassifier
        Read for its parameters only.
    encoder : Encoder
        Never modified.
    aligned : Cohort
        Target records aligned to the encoder's schema.
    columns : list of Column
        The columns the network reads.
    random_state, progress :
        Seed of the non-private randomness; progress bars.
    plan : dict, optional
        :func:`plan_fit`'s output; planned for ``aligned`` when None.
    ledger : FitLedger, optional
        Charged by a private fit (required under privacy).

    Returns
    -------
    encoder, module, make_inputs, result
        The encoder adapted to ``columns``, the fine-tuned network (in eval mode), the
        function that turns a frame of ``columns`` into the network's inputs, and the
        :class:`privacy.FineTuneResult`.
    """
    import torch

    import privacy as dp
    from graphxfer.anchoring import anchor_for, anchor_module, fit_anchored_map, stored_precision

    # new target-only column parameters and dropout draw from torch's global generators:
    # fork them, seeded from random_state, so that a fit is reproducible (and global state
    # is left as it was)
    with torch_seeded(random_state):
        module, make_inputs, inner = encoder.fine_tunable(columns, random_state=random_state)
    adapted = Encoder(
        inner,
        schema=encoder.schema,
        source_summary=encoder.source_summary,
        kind=encoder.kind,
        metadata=getattr(encoder, "metadata", None),
    )
    plan = plan_fit(model, encoder, aligned.n_persons) if plan is None else plan
    inputs = make_inputs(aligned.X[[c.name for c in columns]])
    y = torch.as_tensor(aligned.y, dtype=torch.float32)
    strategy: Any = model.strategy
    anchor = None
    if model.strategy == "anchored":
        anchor_module(module)
        if encoder.source_head is None:
            # self-supervised pretraining left no source prediction to anchor to (the
            # module's head is freshly initialised): the correction starts from 0 logit
            with torch.no_grad():
                module.head.source_weight.zero_()
                module.head.source_bias.zero_()
        anchor = anchor_for(
            module, stored_precision(encoder), n_target=aligned.n_persons, alpha=plan["alpha"]
        )
        strategy = "linear-probe"  # the correction is the head's only parameter
    elif model.strategy == "partial":
        strategy = dp.get_strategy("partial", n_blocks=model.partial_blocks)
    common: dict[str, Any] = {
        "strategy": strategy,
        "random_state": random_state,
        "device": model.device,
        "progress": progress,
    }
    with torch_seeded(random_state):
        if model.privacy is not None:
            if ledger is None:
                raise GraphxferError("a private fine-tuning run needs the fit's ledger")
            result = dp.fine_tune(
                module,
                inputs,
                y,
                config=plan["config"],
                person_index=person_index(aligned),
                person_level=True,
                ledger=ledger.ledger,
                data_id=ledger.data_id,
                anchor=anchor,
                **common,
            )
        elif anchor is not None:
            fit_anchored_map(module, inputs, y, anchor)
            result = dp.FineTuneResult(
                strategy="anchored",
                private=False,
                phases=(),
                epsilon=None,
                delta=None,
                composition="not private",
                ledger=None,
            )
        else:
            config = dp.TrainConfig(
                epochs=int(model.epochs),
                batch_size=int(model.batch_size),
                learning_rate=float(model.learning_rate),
            )
            result = dp.fine_tune(module, inputs, y, train_config=config, **common)
    module.eval()
    return adapted, module, make_inputs, result


# ---------------------------------------------------------------------- helpers
@contextlib.contextmanager
def torch_seeded(random_state: int | None) -> Iterator[None]:
    """Run the block with torch's global generators forked and seeded from ``random_state``.

    Nothing is seeded when ``random_state`` is None; the caller's generators are restored
    afterwards either way.
    """
    if random_state is None:
        yield
        return
    import torch

    seed = int(np.random.default_rng(random_state).integers(0, 2**63 - 1))
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def person_index(aligned: Cohort) -> np.ndarray:
    """The person of every row: by the id column when the schema declares one, else each row.

    Private fits always take the person-level path (Poisson sampling of persons, division by
    the fixed batch size), decided from the schema (public), never from whether ids repeat
    in the data: the mechanism and the ledger's ``unit`` would otherwise reveal whether
    anyone has several rows, and Opacus' record-level path divides by a batch size computed
    from n.
    """
    if aligned.schema.id is not None:
        return aligned.person_index
    return np.arange(len(aligned))


def module_proba(module: Any, inputs: tuple[Any, ...], batch_size: int = 4096) -> np.ndarray:
    """Positive-class probabilities of a network (one logit per record), in batches."""
    import torch

    device = next(module.parameters()).device
    out = []
    module.eval()
    with torch.no_grad():
        n = int(inputs[0].shape[0])
        for start in range(0, n, batch_size):
            part = [t[start : start + batch_size].to(device) for t in inputs]
            out.append(torch.sigmoid(module(*part).reshape(-1)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)
