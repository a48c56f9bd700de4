"""Max-norm weight constraint (T33): cap each unit's incoming weight vector after every step."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch import nn
from typing_extensions import override

# layers whose weight rows are units' incoming weights: Linear [out, in], RNN kernels [gates*H, in or H], and
# convolution kernels [out, in, *kernel], one filter (an output channel's incoming weights) per row once flattened
_CONSTRAINED = (nn.Linear, nn.RNNBase, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def default_parameters(module: nn.Module) -> list[str]:
    """Names of the weights of every ``nn.Linear``, ``nn.LSTM``/``GRU``/``RNN`` and ``nn.Conv1d/2d/3d`` in ``module``."""
    names = []
    for prefix, layer in module.named_modules():
        if isinstance(layer, _CONSTRAINED):  # recurse: a weight-dropped RNN keeps its kernels in parametrizations
            names += [name for name, p in layer.named_parameters(prefix=prefix) if p.dim() >= 2 and "weight" in name]
    return names


class MaxNorm(Callback):
    r"""After every optimizer step, rescale each row of the chosen weights to an L2 norm of at most ``max_value``.

    Srivastava et al. 2014 (dropout paper, section 5.1): a hard cap on each unit's incoming weight
    vector lets a network use large learning rates without blowing up, as an alternative (or a
    complement) to weight decay; Keras's ``MaxNorm`` constraint, which PyTorch lacks. A row of an
    ``nn.Linear`` weight ``[out, in]`` or of an RNN kernel ``weight_ih``/``weight_hh`` ``[gates·H, in]``
    holds one unit's incoming weights, and so does one filter of a convolution kernel ``[out, in, k…]``
    (the rows of the kernel flattened to ``[out, in·k…]``, Keras's ``MaxNorm(axis=[0, 1, 2])`` on
    Conv2D); ``torch.renorm`` rescales the rows whose norm exceeds the cap.

    Logs ``max_norm/capped`` per epoch: the share of constrained rows that had to be rescaled.

    Args:
        max_value: the cap on each row's L2 norm (Srivastava et al. used 3-4).
        patterns: ``fnmatch`` patterns of parameter names to constrain, e.g. ``["rnn.weight_hh_*",
            "head.weight"]``; ``None`` constrains every weight of ``Linear``, RNN and convolution layers. Each
            pattern must match a parameter.

    Raises:
        ValueError: ``max_value`` ≤ 0; at fit start, a pattern that matches no parameter (the message
            lists the parameter names).

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.MaxNorm   # T33
              init_args:
                max_value: 3.0
                patterns: ["rnn.weight_*", "head.weight"]
    """

    def __init__(self, max_value: float = 3.0, patterns: Optional[Sequence[str]] = None) -> None:
        if not max_value > 0:
            raise ValueError(f"max_value must be > 0 (Srivastava et al. 2014 used 3-4), got {max_value}.")
        if isinstance(patterns, str):
            patterns = [patterns]
        self.max_value = float(max_value)
        self.patterns = list(patterns) if patterns is not None else None
        self.names: list[str] = []
        self._capped = 0
        self._rows = 0

    @property
    def state_key(self) -> str:
        return self._generate_state_key(max_value=self.max_value, patterns=self.patterns)

    def resolve(self, module: nn.Module) -> list[str]:
        """The parameter names this callback constrains in ``module``."""
        if self.patterns is None:
            return default_parameters(module)
        names = [name for name, _ in module.named_parameters()]
        for pattern in self.patterns:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
                raise ValueError(
                    f"MaxNorm: pattern {pattern!r} matches no parameter; the parameters are: {', '.join(names)}."
                )
        return [name for name in names if any(fnmatch.fnmatchcase(name, p) for p in self.patterns)]

    def apply(self, module: nn.Module) -> tuple[int, int]:
        """Cap the rows in place; returns (rows rescaled, rows constrained)."""
        parameters = dict(module.named_parameters())
        capped = rows = 0
        with torch.no_grad():
            for name in self.names:
                weight = parameters[name]
                matrix = weight.view(weight.shape[0], -1) if weight.dim() > 1 else weight.view(1, -1)
                capped += int((torch.linalg.vector_norm(matrix, dim=1) > self.max_value).sum())
                rows += matrix.shape[0]
                torch.renorm(matrix, p=2, dim=0, maxnorm=self.max_value, out=matrix)
        return capped, rows

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self.names = self.resolve(pl_module)

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._capped = self._rows = 0

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        capped, rows = self.apply(pl_module)
        self._capped += capped
        self._rows += rows

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._rows:
            pl_module.log("max_norm/capped", self._capped / self._rows, on_step=False, on_epoch=True)
