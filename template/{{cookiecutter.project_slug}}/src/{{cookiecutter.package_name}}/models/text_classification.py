# task: text_classification
"""Recurrent text classifier: embedding → dropout → [strided Conv1D] → LSTM/GRU → [norm] → dropout → linear.

The recurrent network and its regularisers are shared with the other recurrent task, the training loop with every task
(``recurrent.py`` and ``blocks.py``: T08, T11, T30, T31, T32, T34, T43, T44, T57); this module adds the word embedding
(initialised by ``Word2VecInit``, T23) and the pooling choice for long documents.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ..datamodules.text import TextClassificationDataModule
from ..task import Task
from .recurrent import RecurrentClassifier, check_recurrent, recurrent_arguments


class TextClassifier(RecurrentClassifier):
    """Classify token sequences with a recurrent network.

    Args:
        vocab_size: rows of the embedding (linked from the data module).
        num_classes: output classes (linked from the data module).
        pad_index: embedding row of the padding token (linked from the data module).
        embedding_dim: size of the word vectors.
        downsample: T44: with a stride above 1, a strided Conv1D (+ ReLU) over the embeddings
            shortens a text ``downsample`` times before the RNN reads it, for long documents
            (``benchmarks/results/imdb.md``); 1 (default) reads every token.
        downsample_kernel: the convolution's width in tokens; default ``2 * downsample``.
        pooling: what the head reads from the RNN: ``last`` (each text's final state), ``max`` or
            ``mean`` over its time steps, or ``auto``: ``max`` for long texts (``long_texts``),
            ``last`` otherwise. The end of a long review is far from most of what it says: on IMDB
            max read 1.4 points better than last, on MR's sentences 0.5 worse
            (``benchmarks/results/imdb_pooling.md``, ``mr_pooling.md``).
        long_texts: whether the training texts are long (linked from the data module); decides
            ``pooling: auto``.
        hidden_size: units of each recurrent layer (per direction).
        num_layers: stacked recurrent layers.
        rnn: ``lstm`` or ``gru``.
        bidirectional: read the text in both directions.
        dropout: dropout on the embeddings and on the final hidden state (T30); also
            between stacked layers when ``num_layers > 1``. Never on the recurrent connections.
        locked_dropout: draw the embedding-dropout mask once per sequence and share it across
            time steps (variational dropout, T31) instead of per token.
        weight_dropout: DropConnect probability on the hidden-to-hidden matrices ``weight_hh``
            (AWD-LSTM, T31); 0 turns it off.
        norm: ``batch`` or ``layer`` normalisation of the final recurrent state before the head
            (T34); the recurrent output it normalises comes from no affine layer, so there is no
            bias before it to waste. ``none`` by default.
        weight_decay: decay of the input kernels and linear weights (T32); ``None`` keeps the
            optimizer's own (``optimizer.init_args.weight_decay``, or 0.01 for AdamW). Biases,
            normalisation layers and embeddings are never decayed.
        recurrent_weight_decay: decay of the recurrent kernels ``weight_hh`` (T32); ``None``: as
            ``weight_decay``.
        lr: learning rate given to the optimizer; kept here so an LR finder can set it.
        optimizer: the optimizer class and its other arguments (T08): ``torch.optim.SGD`` (with
            ``momentum``/``nesterov``), ``Adam`` (default), ``AdamW``, ``RMSprop``, ``Adagrad`` or any
            other ``torch.optim`` class; it receives the T32 parameter groups and ``lr``.
        scheduler: an optional LR scheduler; ``ReduceLROnPlateau`` watches ``monitor``.
        monitor: the one metric that early stopping, checkpointing and the schedule follow (T57).

    Example::

        model:
          hidden_size: 128
          rnn: lstm
          lr: 0.001
          weight_decay: 0.0001
          recurrent_weight_decay: 0.0001
          optimizer:
            class_path: torch.optim.AdamW   # or SGD, Adam, RMSprop, Adagrad
    """

    input_key = "tokens"

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        pad_index: int = 0,
        embedding_dim: int = 128,
        downsample: int = 1,
        downsample_kernel: Optional[int] = None,
        pooling: Literal["auto", "last", "max", "mean"] = "last",
        long_texts: bool = False,
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
        optimizer: OptimizerCallable = torch.optim.Adam,  # the config's class inherits these init_args defaults
        scheduler: Optional[LRSchedulerCallable] = None,
        monitor: Literal["val/acc", "val/f1", "val/loss"] = "val/acc",
    ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"need vocab_size >= 2, got {vocab_size}.")
        check_recurrent(**locals())
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.build(embedding_dim, num_classes, long_inputs=long_texts, **recurrent_arguments(locals()))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for padded ``tokens [B, T]`` of the given ``lengths [B]``."""
        return self.classify(self.input_dropout(self.embedding(tokens)), lengths)


TASK = Task(
    model=TextClassifier,
    datamodule=TextClassificationDataModule,
    links=("vocab_size", "num_classes", "pad_index", "long_texts"),
    predict_example="--data.predict_texts '[\"a gripping film\", \"dull\"]'",
    own_data_example="--data.data_path your.csv --data.text_column text --data.label_column label",
)
