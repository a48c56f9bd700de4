"""Recurrent text classifier: embedding → dropout → [strided Conv1D] → LSTM/GRU → [norm] → dropout → linear.

TRICKS: T08 (any torch optimizer from the config, Adam by default), T11 (mean-reduced loss, so
clipping thresholds do not depend on the batch size), T30 (dropout only on the non-recurrent
connections), T31 (locked/variational dropout, DropConnect on the hidden-to-hidden weights),
T32 (weight-decay parameter groups: none on biases, norms and embeddings; separate decay for the
recurrent kernels), T34 (batch or layer norm on the final state), T43 (variable-length
sequences: each text's own last state; packed when bidirectional), T44 (a strided Conv1D front-end that shortens long texts before the RNN), T57 (one
monitor metric, chosen in the config).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

MONITORS = {"val/acc": "max", "val/f1": "max", "val/loss": "min"}
NORMS = ("none", "batch", "layer")


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


def parameter_groups(
    module: nn.Module, weight_decay: Optional[float], recurrent_weight_decay: Optional[float]
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for T32: ``decay`` (input kernels, linear weights), ``recurrent`` (the
    ``weight_hh`` kernels) and ``no_decay`` (biases, normalisation layers, embeddings; weight decay 0).

    A group whose decay is ``None`` carries no ``weight_decay`` key, so the optimizer's own value
    (``optimizer.init_args.weight_decay`` or the class default, 0.01 for AdamW) applies to it.
    Empty groups are left out.
    """
    no_decay_modules = (nn.Embedding, nn.EmbeddingBag, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    groups: dict[str, list[nn.Parameter]] = {"decay": [], "recurrent": [], "no_decay": []}
    seen: set[int] = set()
    for module_name, layer in module.named_modules():
        for name, parameter in layer.named_parameters(recurse=False):
            if id(parameter) in seen or not parameter.requires_grad:
                continue
            seen.add(id(parameter))
            full = f"{module_name}.{name}" if module_name else name
            if isinstance(layer, no_decay_modules) or parameter.dim() < 2 or "bias" in name:
                groups["no_decay"].append(parameter)
            elif "weight_hh" in full:  # also rnn.parametrizations.weight_hh_l0.original (DropConnect)
                groups["recurrent"].append(parameter)
            else:
                groups["decay"].append(parameter)
    decay = {"decay": weight_decay, "recurrent": weight_decay if recurrent_weight_decay is None else recurrent_weight_decay,
             "no_decay": 0.0}
    out = []
    for name, parameters in groups.items():
        if parameters:
            group: dict[str, Any] = {"params": parameters, "name": name}
            if decay[name] is not None:
                group["weight_decay"] = decay[name]
            out.append(group)
    return out


POOLINGS = ("auto", "last", "max", "mean")


def pool(output: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """The ``max`` or ``mean`` over each text's own time steps of RNN outputs ``[B, T, F]`` -> ``[B, F]``."""
    inside = torch.arange(output.shape[1], device=output.device)[None, :] < lengths.to(output.device)[:, None]
    if how == "max":
        return output.masked_fill(~inside[..., None], float("-inf")).amax(dim=1)
    return (output * inside[..., None]).sum(dim=1) / lengths.to(output.device)[:, None].clamp(min=1)


class Downsample(nn.Module):
    """T44: a strided Conv1D + ReLU over ``[B, T, F]`` that the RNN then reads in ``~T / stride`` steps.

    The kernel spans ``kernel_size`` positions (2 strides by default, so neighbouring windows
    overlap by half); a text's length becomes the number of windows that start inside it, at least 1.
    """

    def __init__(self, features: int, stride: int, kernel_size: Optional[int] = None) -> None:
        super().__init__()
        self.stride = stride
        self.kernel_size = kernel_size or 2 * stride
        self.padding = (self.kernel_size - stride) // 2
        self.conv = nn.Conv1d(features, features, self.kernel_size, stride=stride, padding=self.padding)

    def lengths(self, lengths: torch.Tensor, steps: int) -> torch.Tensor:
        """The lengths after the convolution of texts of ``lengths``, for an output of ``steps`` positions."""
        out = torch.div(lengths + 2 * self.padding - self.kernel_size, self.stride, rounding_mode="floor") + 1
        return out.clamp(1, steps)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        short = self.kernel_size - 2 * self.padding - x.shape[1]
        if short > 0:  # a batch of texts shorter than one window: pad to one
            x = nn.functional.pad(x, (0, 0, 0, short))
        out = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return out, self.lengths(lengths, out.shape[1])


class TextClassifier(LightningModule):
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
        if vocab_size < 2 or num_classes < 2:
            raise ValueError(f"need vocab_size >= 2 and num_classes >= 2, got {vocab_size} and {num_classes}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        if not 0.0 <= weight_dropout < 1.0:
            raise ValueError(f"weight_dropout must be in [0, 1), got {weight_dropout}.")
        if downsample < 1:
            raise ValueError(f"downsample must be >= 1 (1: no convolution front-end), got {downsample}.")
        if downsample_kernel is not None and downsample_kernel < downsample:
            raise ValueError(f"downsample_kernel must be >= downsample ({downsample}) so no token is skipped, "
                             f"got {downsample_kernel}.")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}.")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}.")
        for name, value in (("weight_decay", weight_decay), ("recurrent_weight_decay", recurrent_weight_decay)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or null (the optimizer's own), got {value}.")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}.")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.lr = lr
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.monitor = monitor
        self.weight_decay = weight_decay
        self.pooling = ("max" if long_texts else "last") if pooling == "auto" else pooling
        self.recurrent_weight_decay = recurrent_weight_decay

        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.dropout = nn.Dropout(dropout)
        self.input_dropout = LockedDropout(dropout) if locked_dropout else self.dropout
        self.downsample = Downsample(embedding_dim, downsample, downsample_kernel) if downsample > 1 else None
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn]
        self.rnn = rnn_class(
            embedding_dim,
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
        features = hidden_size * (2 if bidirectional else 1)
        self.norm = {"none": nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm](features)
        self.head = nn.Linear(features, num_classes)
        self.loss = nn.CrossEntropyLoss(reduction="mean")  # T11
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes, average="micro"))
        for stage in ("val", "test"):
            setattr(self, f"{stage}_f1", MulticlassF1Score(num_classes, average="macro"))
        # the training epoch's running loss and accuracy travel in checkpoints (torchmetrics' persistent states),
        # so an epoch resumed mid-way ends with the same train/loss_epoch and train/acc as one never stopped
        self.train_loss = MeanMetric()
        for metric in (self.train_loss, self.train_acc):
            metric.persistent(True)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for padded ``tokens [B, T]`` of the given ``lengths [B]``."""
        embedded = self.input_dropout(self.embedding(tokens))
        if self.downsample is not None:  # T44
            embedded, lengths = self.downsample(embedded, lengths)
        if not self.rnn.bidirectional:
            # read forwards, a text's state at its last token is its final state: padding comes after it. The padded
            # batch runs unpacked: torch's backward through a packed RNN of unequal lengths grows far faster than the
            # length on CPU (64 texts of up to 400 tokens: 24 s against 0.8 s, benchmarks/results/packed_backward.md)
            output, _ = self.rnn(embedded)
            if self.pooling == "last":
                last = output[torch.arange(len(lengths), device=output.device), (lengths - 1).to(output.device)]
                return self.head(self.dropout(self.norm(last)))
        else:  # the backward direction must start at each text's own end: packed
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_output, hidden = self.rnn(packed)
            if self.pooling == "last":
                if isinstance(hidden, tuple):  # LSTM: (h_n, c_n)
                    hidden = hidden[0]
                last = hidden.view(self.rnn.num_layers, 2, *hidden.shape[1:])[-1]
                return self.head(self.dropout(self.norm(torch.cat(list(last), dim=-1))))
            output, _ = pad_packed_sequence(packed_output, batch_first=True, total_length=embedded.shape[1])
        return self.head(self.dropout(self.norm(pool(output, lengths, self.pooling))))

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["tokens"], batch["lengths"])
        loss = self.loss(logits, batch["labels"])
        size = len(batch["labels"])
        if stage == "train":
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
            self.train_loss.update(loss.detach(), size)
            self.log("train/loss_epoch", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        else:
            self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        getattr(self, f"{stage}_acc")(logits, batch["labels"])
        self.log(f"{stage}/acc", getattr(self, f"{stage}_acc"), on_step=False, on_epoch=True, prog_bar=True)
        if stage != "train":
            getattr(self, f"{stage}_f1")(logits, batch["labels"])
            self.log(f"{stage}/f1", getattr(self, f"{stage}_f1"), on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_start(self) -> None:
        # an epoch starts from zero, also after a resume from the previous epoch's checkpoint, which holds
        # the running values of that epoch (Lightning resets only the metrics it saw logged in this process)
        self.train_loss.reset()
        self.train_acc.reset()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class probabilities ``[B, num_classes]``."""
        return torch.softmax(self(batch["tokens"], batch["lengths"]), dim=-1)

    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self, self.weight_decay, self.recurrent_weight_decay)  # T32
        optimizer = self.optimizer(groups, lr=self.lr)
        if len({group.get("weight_decay") for group in optimizer.param_groups}) == 1:
            # every group decays alike (e.g. Adam without decay): one plain group, logged as plain `lr-<Optimizer>`
            optimizer = self.optimizer(self.parameters(), lr=self.lr)
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"},
        }
