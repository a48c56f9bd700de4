"""What every task's classifier shares: the training loop, its metrics, and the optimizer with its decay groups.

Tricks: T08 (any torch optimizer from the config, Adam by default), T11 (mean-reduced loss, so
clipping thresholds do not depend on the batch size), T32 (weight-decay parameter groups: none on
biases, norms and embeddings; separate decay for recurrent kernels), T57 (one monitor metric,
chosen in the config).

A task's model builds its network in ``__init__``, calls :meth:`Classifier.build_classifier` and
implements :meth:`Classifier.logits`; the loop, the metrics and the optimizers are here.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

#: the metrics ``model.monitor`` may name, with the direction of "better"; the CLI links every callback to it
MONITORS = {"val/acc": "max", "val/f1": "max", "val/loss": "min"}


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


def check_classifier(num_classes: int, dropout: float, weight_decay: Optional[float], lr: float, **_: Any) -> None:
    """Raise ``ValueError`` for a bad argument every task's classifier takes, with the values it takes."""
    if num_classes < 2:
        raise ValueError(f"need num_classes >= 2, got {num_classes}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0 or null (the optimizer's own), got {weight_decay}.")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}.")


class Classifier(LightningModule):
    """Base of the tasks' models: cross-entropy on the logits of a batch, metrics per stage, optimizers (T08, T11, T32, T57).

    A subclass builds its network, calls :meth:`build_classifier` in ``__init__`` and implements
    :meth:`logits`. Validation and test steps return ``{"loss", "logits"}``; predict returns probabilities.
    """

    def build_classifier(self, num_classes: int, *, lr: float, optimizer: OptimizerCallable,
                         scheduler: Optional[LRSchedulerCallable], monitor: str, weight_decay: Optional[float],
                         recurrent_weight_decay: Optional[float] = None) -> None:
        """Create the loss and metrics and keep what ``configure_optimizers`` needs."""
        self.lr = lr
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.monitor = monitor
        self.weight_decay = weight_decay
        self.recurrent_weight_decay = recurrent_weight_decay
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

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The logits ``[B, num_classes]`` of a batch (a dict holding ``labels`` and the task's inputs)."""
        raise NotImplementedError

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.logits(batch)
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
        return torch.softmax(self.logits(batch), dim=-1)

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
