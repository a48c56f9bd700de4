# task: text_classification, sequence_classification
"""What the recurrent tasks' classifiers share: the regularisers, the T44 front-end, pooling and the recurrent network.

Tricks: T30 (dropout only on the non-recurrent connections), T31 (locked/variational dropout,
DropConnect on the hidden-to-hidden weights), T32 (the recurrent kernels' own weight decay), T34
(batch or layer norm on the final state), T43 (variable-length sequences: each sequence's own
last state; packed when bidirectional), T44 (a strided Conv1D front-end that shortens long
sequences before the RNN). The loop, metrics and optimizers are every task's (``blocks.py``).

A task's model (``text_classification.py``, ``sequence_classification.py``) turns its inputs into
features ``[B, T, F]`` and calls :meth:`RecurrentClassifier.build` once in ``__init__``; the rest is here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .blocks import Classifier, check_classifier

NORMS = ("none", "batch", "layer")
RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}


class LockedDropout(nn.Module):
    """Variational dropout (Gal & Ghahramani 2016): one mask per sequence, shared by every time step.

    Input ``[B, T, F]`` (or ``[B, F]``); the mask is drawn as ``[B, 1, F]`` and broadcast over time.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (x.shape[0], 1, x.shape[2]) if x.dim() == 3 else x.shape
        mask = x.new_empty(shape).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask


class DropConnect(nn.Module):
    """Weight dropout on a matrix (AWD-LSTM, Merity et al. 2017), as a ``torch.nn.utils.parametrize`` parametrization.

    In training each forward pass drops hidden-to-hidden weights with probability ``p`` (one mask
    for the whole sequence, so the recurrence is the same at every step); in evaluation the weights
    are used as they are. The stored parameter becomes ``rnn.parametrizations.weight_hh_l0.original``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(weight, self.p, self.training)


POOLINGS = ("auto", "last", "max", "mean")


def pool(output: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """The ``max`` or ``mean`` over each sequence's own time steps of RNN outputs ``[B, T, F]`` -> ``[B, F]``."""
    inside = torch.arange(output.shape[1], device=output.device)[None, :] < lengths.to(output.device)[:, None]
    if how == "max":
        return output.masked_fill(~inside[..., None], float("-inf")).amax(dim=1)
    return (output * inside[..., None]).sum(dim=1) / lengths.to(output.device)[:, None].clamp(min=1)


class Downsample(nn.Module):
    """T44: a strided Conv1D + ReLU over ``[B, T, F]`` that the RNN then reads in ``~T / stride`` steps.

    The kernel spans ``kernel_size`` positions (2 strides by default, so neighbouring windows
    overlap by half); a sequence's length becomes the number of windows that start inside it, at least 1.
    ``out_features`` (default: ``features``) is the number of filters, the RNN's input size.
    """

    def __init__(self, features: int, stride: int, kernel_size: Optional[int] = None,
                 out_features: Optional[int] = None) -> None:
        super().__init__()
        self.stride = stride
        self.kernel_size = kernel_size or 2 * stride
        self.padding = (self.kernel_size - stride) // 2
        self.out_features = out_features or features
        self.conv = nn.Conv1d(features, self.out_features, self.kernel_size, stride=stride, padding=self.padding)

    def lengths(self, lengths: torch.Tensor, steps: int) -> torch.Tensor:
        """The lengths after the convolution of sequences of ``lengths``, for an output of ``steps`` positions."""
        out = torch.div(lengths + 2 * self.padding - self.kernel_size, self.stride, rounding_mode="floor") + 1
        return out.clamp(1, steps)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        short = self.kernel_size - 2 * self.padding - x.shape[1]
        if short > 0:  # a batch of sequences shorter than one window: pad to one
            x = nn.functional.pad(x, (0, 0, 0, short))
        out = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return out, self.lengths(lengths, out.shape[1])


def check_recurrent(num_classes: int, downsample: int, downsample_kernel: Optional[int], pooling: str,
                    dropout: float, weight_dropout: float, norm: str, weight_decay: Optional[float],
                    recurrent_weight_decay: Optional[float], lr: float, input_dropout: Optional[float] = None,
                    **_: Any) -> None:
    """Raise ``ValueError`` for a bad argument of the recurrent classifier, with the values it takes."""
    check_classifier(num_classes, dropout, weight_decay, lr)
    if input_dropout is not None and not 0.0 <= input_dropout < 1.0:
        raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}.")
    if not 0.0 <= weight_dropout < 1.0:
        raise ValueError(f"weight_dropout must be in [0, 1), got {weight_dropout}.")
    if downsample < 1:
        raise ValueError(f"downsample must be >= 1 (1: no convolution front-end), got {downsample}.")
    if downsample_kernel is not None and downsample_kernel < downsample:
        raise ValueError(f"downsample_kernel must be >= downsample ({downsample}) so no step is skipped, "
                         f"got {downsample_kernel}.")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}.")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}.")
    if recurrent_weight_decay is not None and recurrent_weight_decay < 0:
        raise ValueError(f"recurrent_weight_decay must be >= 0 or null (as weight_decay), got {recurrent_weight_decay}.")


#: the arguments of a task model's ``__init__`` that :meth:`RecurrentClassifier.build` takes as they are
RECURRENT_ARGUMENTS = (
    "downsample", "downsample_kernel", "downsample_channels", "pooling", "hidden_size", "num_layers", "rnn",
    "bidirectional", "dropout", "input_dropout", "locked_dropout", "weight_dropout", "norm", "weight_decay", "recurrent_weight_decay",
    "lr", "optimizer", "scheduler", "monitor",
)


def recurrent_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``arguments`` (a model's ``locals()`` in ``__init__``) that ``build`` takes."""
    return {name: arguments[name] for name in RECURRENT_ARGUMENTS if name in arguments}


class RecurrentClassifier(Classifier):
    """Base of the tasks' models: features ``[B, T, F]`` → [strided Conv1D] → LSTM/GRU → pooling → [norm] → dropout → linear.

    A subclass sets ``input_key`` (the batch entry holding its inputs), calls :meth:`build` in
    ``__init__`` after creating its own input layers, and implements ``forward(inputs, lengths)``
    with :meth:`classify`. Its ``__init__`` takes these arguments (documented in its own docstring):
    ``downsample``, ``downsample_kernel``, ``pooling``, ``hidden_size``, ``num_layers``, ``rnn``,
    ``bidirectional``, ``dropout``, ``input_dropout`` (optional; default ``dropout``), ``locked_dropout``, ``weight_dropout``, ``norm``,
    ``weight_decay``, ``recurrent_weight_decay``, ``lr``, ``optimizer``, ``scheduler``, ``monitor``.
    """

    input_key: ClassVar[str] = "inputs"

    def build(
        self,
        features: int,
        num_classes: int,
        *,
        downsample: int,
        downsample_kernel: Optional[int],
        downsample_channels: Optional[int] = None,
        pooling: str,
        long_inputs: bool,
        hidden_size: int,
        num_layers: int,
        rnn: str,
        bidirectional: bool,
        dropout: float,
        input_dropout: Optional[float] = None,
        locked_dropout: bool,
        weight_dropout: float,
        norm: str,
        weight_decay: Optional[float],
        recurrent_weight_decay: Optional[float],
        lr: float,
        optimizer: OptimizerCallable,
        scheduler: Optional[LRSchedulerCallable],
        monitor: str,
    ) -> None:
        """Create the recurrent network, its head and metrics for inputs of ``features`` per step."""
        self.build_classifier(num_classes, lr=lr, optimizer=optimizer, scheduler=scheduler, monitor=monitor,
                              weight_decay=weight_decay, recurrent_weight_decay=recurrent_weight_decay)
        self.pooling = ("max" if long_inputs else "last") if pooling == "auto" else pooling
        self.dropout = nn.Dropout(dropout)
        on_inputs = dropout if input_dropout is None else input_dropout  # T30: the input -> RNN connections
        self.input_dropout = (LockedDropout(on_inputs) if locked_dropout else
                              self.dropout if on_inputs == dropout else nn.Dropout(on_inputs))
        self.downsample = (Downsample(features, downsample, downsample_kernel, downsample_channels)
                           if downsample > 1 else None)
        self.rnn = RNNS[rnn](
            self.downsample.out_features if self.downsample is not None else features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        if weight_dropout > 0:
            for name in self.rnn._flat_weights_names:
                if name.startswith("weight_hh"):
                    parametrize.register_parametrization(self.rnn, name, DropConnect(weight_dropout))
        width = hidden_size * (2 if bidirectional else 1)
        self.norm = {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm](width)
        self.head = nn.Linear(width, num_classes)

    def classify(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for padded ``features [B, T, F]`` of the given ``lengths [B]``."""
        if self.downsample is not None:  # T44
            features, lengths = self.downsample(features, lengths)
        if not self.rnn.bidirectional:
            # read forwards, a sequence's state at its last step is its final state: padding comes after it. The
            # padded batch runs unpacked: torch's backward through a packed RNN of unequal lengths grows far faster
            # than the length on CPU (64 texts of up to 400 tokens: 24 s against 0.8 s, packed_backward.md)
            output, _ = self.rnn(features)
            if self.pooling == "last":
                last = output[torch.arange(len(lengths), device=output.device), (lengths - 1).to(output.device)]
                return self.head(self.dropout(self.norm(last)))
        else:  # the backward direction must start at each sequence's own end: packed
            packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_output, hidden = self.rnn(packed)
            if self.pooling == "last":
                if isinstance(hidden, tuple):  # LSTM: (h_n, c_n)
                    hidden = hidden[0]
                last = hidden.view(self.rnn.num_layers, 2, *hidden.shape[1:])[-1]
                return self.head(self.dropout(self.norm(torch.cat(list(last), dim=-1))))
            output, _ = pad_packed_sequence(packed_output, batch_first=True, total_length=features.shape[1])
        return self.head(self.dropout(self.norm(pool(output, lengths, self.pooling))))

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch[self.input_key], batch["lengths"])
