"""What the callbacks may read from a task's data module and model: the one contract every task keeps.

The callbacks never import a data module or a model. They read these attributes, and only these;
a data module that lacks an optional one simply gets no check that needs it.

Every data module (``ClassificationData``):
    ``num_classes`` (int), ``labels`` (the class names, index order), ``class_counts(split)``
    (examples per class in ``"train"``, ``"val"`` or ``"test"``), ``batch_size`` (int).
Optional, for batches of variable length: ``bucketing`` and ``stratified_batches`` (bools, how the
training batches are formed); every batch then carries ``lengths`` (the padding check counts the
positions past each example's length).
A data module of tokens (``TokenData``) also has ``vocab`` (``itos``: the words by row),
``pad_index`` and ``training_tokens()`` (the training split's token lists), and may have an
unlabelled corpus: ``unlabelled``, ``unlabelled_name``, ``unlabelled_reason``, ``unlabelled_tokens()``.

Optional, example by example (ensembles, ``ClassicalBlend``, ``HardExamples``): ``ordered_loader(split)``
(the split unshuffled, unbucketed, never augmented), ``split_labels(split)`` (label indices in that
order) and ``split_inputs(split)`` (the texts, or the series/images as the model reads them).

Optional, for figures of examples: ``example_figure(per_class)`` (``DataExamples``) and
``draw_examples(batch, captions, wrong, title)`` (``PredictionExamples``), each a matplotlib figure.

Every model: ``hparams.num_classes`` (saved hyperparameter) and ``lr`` (what the LR finder sets).
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

from lightning.pytorch import LightningModule, Trainer


@runtime_checkable
class ClassificationData(Protocol):
    """The part of the contract every task's data module keeps."""

    num_classes: int
    labels: list[str]
    batch_size: int

    def class_counts(self, split: str = "train") -> list[int]:
        """Examples per class (in ``labels`` order) in ``split``."""


@runtime_checkable
class TokenData(ClassificationData, Protocol):
    """A data module of word tokens (the text task): what embedding initialisation needs."""

    vocab: Any
    pad_index: int

    def training_tokens(self) -> list[list[str]]:
        """The training split's texts as token lists."""


def classification_data(trainer: Trainer) -> Optional[ClassificationData]:
    """The trainer's data module when it keeps the contract, else ``None`` (bare dataloaders)."""
    data = trainer.datamodule
    return data if isinstance(data, ClassificationData) else None


def token_data(trainer: Trainer) -> Optional[TokenData]:
    """The trainer's data module when it holds word tokens, else ``None``."""
    data = trainer.datamodule
    return data if isinstance(data, TokenData) else None


def num_classes(trainer: Trainer, pl_module: LightningModule, given: Optional[int] = None) -> Optional[int]:
    """The number of classes: ``given``, else the model's ``hparams.num_classes``, else the data module's."""
    if given:
        return int(given)
    classes = pl_module.hparams.get("num_classes") if isinstance(pl_module.hparams, dict) else None
    if classes is None:
        data = classification_data(trainer)
        classes = data.num_classes if data is not None else None
    return int(classes) if classes else None


def label_names(trainer: Trainer) -> Optional[list[str]]:
    """The class names of the data module, index order; ``None`` without a data module that names them."""
    data = classification_data(trainer)
    return [str(label) for label in data.labels] if data is not None else None
