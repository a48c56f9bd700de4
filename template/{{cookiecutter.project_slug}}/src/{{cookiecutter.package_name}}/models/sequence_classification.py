# task: sequence_classification
"""Recurrent classifier of numeric sequences: series → [strided Conv1D] → LSTM/GRU → [norm] → dropout → linear.

The recurrent network and its regularisers are shared with the other recurrent task, the training loop with every task
(``recurrent.py`` and ``blocks.py``: T08, T11, T30, T31, T32, T34, T43, T44, T57); this module reads the series'
channels as they are, many-to-one.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from ..datamodules.sequence import SequenceClassificationDataModule
from ..task import Task
from .recurrent import RecurrentClassifier, check_recurrent, recurrent_arguments


class SequenceClassifier(RecurrentClassifier):
    """Classify numeric sequences ``[B, T, C]`` with a recurrent network.

    Args:
        input_size: channels per time step (linked from the data module).
        num_classes: output classes (linked from the data module).
        long_sequences: whether the training series are long (linked from the data module);
            decides ``pooling: auto``.
        input_dropout: dropout on the input channels (T30); 0 by default: on a series of one
            or a few channels it would blank whole time steps.
        downsample: T44: with a stride above 1, a strided Conv1D (+ ReLU) with
            ``downsample_channels`` filters reads ``downsample_kernel`` steps per window and
            shortens the series ``downsample`` times before the RNN; 1 (default) reads every step.
        downsample_kernel: the convolution's width in steps; default ``2 * downsample``.
        downsample_channels: the convolution's filters (the RNN's input size); default ``hidden_size``.
        pooling: what the head reads from the RNN: ``last`` (each series' final state), ``max``
            or ``mean`` over its time steps, or ``auto``: ``max`` for long series, ``last`` otherwise.
        hidden_size: units of each recurrent layer (per direction).
        num_layers: stacked recurrent layers.
        rnn: ``lstm`` or ``gru``.
        bidirectional: read the series in both directions.
        dropout: dropout on the final state before the head (T30); also between stacked layers.
            Never on the recurrent connections.
        locked_dropout: one input-dropout mask per series, shared by all its steps (T31).
        weight_dropout: DropConnect probability on the hidden-to-hidden matrices (T31).
        norm: ``none``, ``batch`` or ``layer`` normalisation of the final state (T34).
        weight_decay: decay of the input kernels and linear weights (T32); ``None``: the optimizer's own.
        recurrent_weight_decay: decay of the recurrent kernels (T32); ``None``: as ``weight_decay``.
        lr: learning rate given to the optimizer; kept here so an LR finder can set it.
        optimizer: the optimizer class and its other arguments (T08).
        scheduler: an optional LR scheduler; ``ReduceLROnPlateau`` watches ``monitor``.
        monitor: the one metric that early stopping, checkpointing and the schedule follow (T57).

    Example::

        model:
          hidden_size: 128
          rnn: lstm
          downsample: 4          # T44, for series of thousands of steps
          lr: 0.003
    """

    input_key = "series"

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        long_sequences: bool = False,
        input_dropout: float = 0.0,
        downsample: int = 1,
        downsample_kernel: Optional[int] = None,
        downsample_channels: Optional[int] = None,
        pooling: Literal["auto", "last", "max", "mean"] = "last",
        hidden_size: int = 128,
        num_layers: int = 1,
        rnn: Literal["lstm", "gru"] = "lstm",
        bidirectional: bool = False,
        dropout: float = 0.5,
        locked_dropout: bool = False,
        weight_dropout: float = 0.0,
        norm: Literal["none", "batch", "layer"] = "none",
        weight_decay: Optional[float] = None,
        recurrent_weight_decay: Optional[float] = None,
        lr: float = 1e-3,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: Optional[LRSchedulerCallable] = None,
        monitor: Literal["val/acc", "val/f1", "val/loss"] = "val/acc",
    ) -> None:
        super().__init__()
        if input_size < 1:
            raise ValueError(f"need input_size >= 1 (channels), got {input_size}.")
        if downsample_channels is not None and downsample_channels < 1:
            raise ValueError(f"downsample_channels must be >= 1 or null (hidden_size), got {downsample_channels}.")
        check_recurrent(**locals())
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        arguments = recurrent_arguments(locals())
        arguments["downsample_channels"] = downsample_channels or hidden_size
        self.build(input_size, num_classes, long_inputs=long_sequences, **arguments)

    def forward(self, series: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for zero-padded ``series [B, T, C]`` of the given ``lengths [B]``."""
        return self.classify(self.input_dropout(series), lengths)


TASK = Task(
    model=SequenceClassifier,
    datamodule=SequenceClassificationDataModule,
    links=("input_size", "num_classes", "long_sequences"),
    predict_example="--data.predict_path your_series.ts",
    own_data_example="--data.data_path your_series.ts   (or .npz, .npy + --data.label_path, .csv)",
)
