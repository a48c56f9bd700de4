"""What every task's recurrent classifier shares: the regularisers, the T44 front-end, pooling and the training loop.

Tricks: T08 (any torch optimizer from the config, Adam by default), T11 (mean-reduced loss, so
clipping thresholds do not depend on the batch size), T30 (dropout only on the non-recurrent
connections), T31 (locked/variational dropout, DropConnect on the hidden-to-hidden weights),
T32 (weight-decay parameter groups: none on biases, norms and embeddings; separate decay for the
recurrent kernels), T34 (batch or layer norm on the final state), T43 (variable-length
sequences: each sequence's own last state; packed when bidirectional), T44 (a strided Conv1D
front-end that shortens long sequences before the RNN), T57 (one monitor metric, chosen in the config).

A task's model (``text_classification.py``, ``sequence_classification.py``) turns its inputs into
features ``[B, T, F]`` and calls :meth:`RecurrentClassifier.build` once in ``__init__``; the rest is here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

#: the metrics ``model.monitor`` may name, with the direction of "better"; the CLI links every callback to it
MONITORS = {"val/acc": "max", "val/f1": "max", "val/loss": "min"}
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
    if num_classes < 2:
        raise ValueError(f"need num_classes >= 2, got {num_classes}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
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
    for name, value in (("weight_decay", weight_decay), ("recurrent_weight_decay", recurrent_weight_decay)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0 or null (the optimizer's own), got {value}.")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}.")


#: the arguments of a task model's ``__init__`` that :meth:`RecurrentClassifier.build` takes as they are
RECURRENT_ARGUMENTS = (
    "downsample", "downsample_kernel", "downsample_channels", "pooling", "hidden_size", "num_layers", "rnn",
    "bidirectional", "dropout", "input_dropout", "locked_dropout", "weight_dropout", "norm", "weight_decay", "recurrent_weight_decay",
    "lr", "optimizer", "scheduler", "monitor",
)


def recurrent_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``arguments`` (a model's ``locals()`` in ``__init__``) that ``build`` takes."""
    return {name: arguments[name] for name in RECURRENT_ARGUMENTS if name in arguments}


class RecurrentClassifier(LightningModule):
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
        self.lr = lr
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.monitor = monitor
        self.weight_decay = weight_decay
        self.pooling = ("max" if long_inputs else "last") if pooling == "auto" else pooling
        self.recurrent_weight_decay = recurrent_weight_decay
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

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch[self.input_key], batch["lengths"])
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
        return loss, logits

    def on_train_epoch_start(self) -> None:
        # an epoch starts from zero, also after a resume from the previous epoch's checkpoint, which holds
        # the running values of that epoch (Lightning resets only the metrics it saw logged in this process)
        self.train_loss.reset()
        self.train_acc.reset()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")[0]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """The loss and the logits (``ConfusionMatrix`` reads them, callbacks/contract.py)."""
        loss, logits = self._shared_step(batch, "val")
        return {"loss": loss, "logits": logits.detach()}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """The loss and the logits (``ConfusionMatrix`` reads them, callbacks/contract.py)."""
        loss, logits = self._shared_step(batch, "test")
        return {"loss": loss, "logits": logits.detach()}

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class probabilities ``[B, num_classes]``."""
        return torch.softmax(self(batch[self.input_key], batch["lengths"]), dim=-1)

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
