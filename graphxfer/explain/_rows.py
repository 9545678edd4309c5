"""Row functions: the model's output on masked rows, for the Shapley estimators.

A masked row takes some columns from a record and the others from a background row (see
:mod:`graphxfer.explain._shapley`). Two ways to evaluate many of them:

- :class:`FrameRows`, for any model: the masked rows are assembled in the numeric view of
  :class:`~graphxfer.explain._codec.FeatureCodec`, decoded to data frames of original values
  and passed to ``predict_proba`` in large batches.
- :class:`TorchRows`, the fast path for models that expose their per-column inputs
  (``torch_explain_parts()``, see :mod:`graphxfer.explain._torch`): the records and the
  background rows are translated into the model's inputs *once*; a masked row is then
  assembled from those inputs column by column (each column's inputs depend on that column
  only) and the network runs on large batches under ``torch.inference_mode``, with no data
  frame, validation or featurisation per batch. Its outputs equal ``predict_proba``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from graphxfer.explain._codec import FeatureCodec
from graphxfer.explain._model import ModelFunction, to_scale
from graphxfer.explain._torch import TorchParts

__all__ = ["FrameRows", "TorchRows"]


class FrameRows:
    """Masked rows through ``model.predict_proba`` on decoded data frames.

    Shapes: ``records`` ``[R]``, ``rows`` ``[R]``, ``take`` ``[R, m]`` -> ``[R]``.
    """

    def __init__(
        self,
        model: Any,
        codec: FeatureCodec,
        link: str,
        matrix: np.ndarray,
        background_matrix: np.ndarray,
        *,
        batch_rows: int = 32768,
    ) -> None:
        self.function = ModelFunction(model, codec, link)
        self.matrix = matrix
        self.background_matrix = background_matrix
        self.batch_rows = batch_rows

    def __call__(self, records: np.ndarray, rows: np.ndarray, take: np.ndarray) -> np.ndarray:
        out = np.empty(len(records), dtype=np.float64)
        for start in range(0, len(records), self.batch_rows):
            part = slice(start, start + self.batch_rows)
            masked = np.where(
                take[part], self.matrix[records[part]], self.background_matrix[rows[part]]
            )
            out[part] = self.function(masked)
        return out


class TorchRows:
    """Masked rows assembled from the model's per-column inputs and run through its network.

    ``parts.encode`` translates the records and the background rows into the model's
    internal inputs once (``[n, d]`` and ``[b, d]``); ``parts.groups`` says which inputs
    belong to which column. A masked row takes the inputs of the columns in ``take`` from
    the record and the others from the background row; ``parts.module`` maps the batch to
    log-odds, which become probabilities exactly as ``predict_proba`` computes them
    (sigmoid in the network's precision, then float64) before the link.

    Shapes: ``records`` ``[R]``, ``rows`` ``[R]``, ``take`` ``[R, m]`` -> ``[R]``.
    """

    def __init__(
        self,
        parts: TorchParts,
        names: list[str] | tuple[str, ...],
        frame: pd.DataFrame,
        background: pd.DataFrame,
        link: str,
        *,
        batch_rows: int = 4096,
    ) -> None:
        import torch

        self.module = parts.module
        self.link = link
        self.batch_rows = batch_rows
        try:
            self.device = next(self.module.parameters()).device
        except StopIteration:  # a module without parameters
            self.device = torch.device("cpu")
        with torch.inference_mode():
            self.inputs = parts.tensor(frame, _dtype_of(self.module)).to(self.device)
            self.background = parts.tensor(background, _dtype_of(self.module)).to(self.device)
        width = self.inputs.shape[1]
        column = np.full(width, -1, dtype=np.int64)
        for j, name in enumerate(names):
            column[parts.groups[name]] = j
        self.column = torch.as_tensor(column, device=self.device)  # column of each input

    def __call__(self, records: np.ndarray, rows: np.ndarray, take: np.ndarray) -> np.ndarray:
        return to_scale(self.proba(records, rows, take), self.link)

    def proba(self, records: np.ndarray, rows: np.ndarray, take: np.ndarray) -> np.ndarray:
        """The probabilities of the positive class of the masked rows, ``[R]`` float64."""
        import torch

        out = np.empty(len(records), dtype=np.float64)
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(records), self.batch_rows):
                    part = slice(start, start + self.batch_rows)
                    out[part] = self._proba(records[part], rows[part], take[part])
        finally:
            self.module.train(was_training)
        return out

    def _proba(self, records: np.ndarray, rows: np.ndarray, take: np.ndarray) -> np.ndarray:
        import torch

        device = self.device
        chosen = torch.as_tensor(take, device=device)[:, self.column]  # [B, d]
        x = torch.where(
            chosen,
            self.inputs[torch.as_tensor(records, device=device)],
            self.background[torch.as_tensor(rows, device=device)],
        )
        logit = self.module(x).reshape(-1)
        return torch.sigmoid(logit).double().cpu().numpy()


def _dtype_of(module: Any) -> Any:
    import torch

    for param in module.parameters():
        return param.dtype
    return torch.float32
