# task: image_classification
"""A small ResNet-style image classifier: conv stem → residual stages → global average pool → dropout → linear.

Sized for the data: one stage per halving of the image while it is larger than 4 pixels, the
width doubling at each; the training loop, metrics and optimizers are every task's (``blocks.py``:
T08, T11, T32, T57). Tuning advice built in: batch normalisation with no bias in the convolution
before it (T34); dropout on the fully connected head only, never on the convolutions (T30 for
CNNs); He/Kaiming initialisation for the ReLU layers (T20: ``WeightInit(conv=kaiming_normal)``
in the default config; PyTorch's own otherwise); the last batch norm of each residual branch
starts at zero (Goyal et al. 2017), so every block starts as the identity; optional
``channels_last`` memory format for mixed precision on GPUs.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ..datamodules.image import ImageClassificationDataModule
from ..task import Task
from .blocks import Classifier, check_classifier

#: a stage halves the image while its smaller side is above this many pixels (``depth: null``)
SMALLEST_SIDE = 4


def conv_bn(inputs: int, outputs: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution without bias + batch norm (T34: the norm's shift replaces the bias)."""
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(outputs))


class ResidualBlock(nn.Module):
    """He et al.'s basic block: conv-BN-ReLU-conv-BN plus the input (through a 1x1 projection when the shape changes)."""

    def __init__(self, inputs: int, outputs: int, stride: int = 1) -> None:
        super().__init__()
        self.branch = nn.Sequential(conv_bn(inputs, outputs, stride), nn.ReLU(inplace=True), conv_bn(outputs, outputs))
        self.shortcut = nn.Identity() if stride == 1 and inputs == outputs else nn.Sequential(
            nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm2d(outputs))
        self.relu = nn.ReLU(inplace=True)
        nn.init.zeros_(self.branch[-1][1].weight)  # zero-init residual: the block starts as its shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))


def stages_for(image_size: list[int]) -> int:
    """Stages for an image: 1 + the halvings before the smaller side is 4 pixels or less.

    Example:
        >>> stages_for([8, 8]), stages_for([28, 28]), stages_for([32, 32]), stages_for([224, 224])
        (2, 3, 4, 6)
    """
    side = min(image_size)
    return 1 + max(0, math.floor(math.log2(side / SMALLEST_SIDE)))


class ImageClassifier(Classifier):
    """Classify images ``[B, C, H, W]`` with a small residual CNN.

    Args:
        in_channels: channels per image (linked from the data module).
        num_classes: output classes (linked from the data module).
        image_size: ``[height, width]`` (linked from the data module); decides ``depth: null``.
        width: filters of the first stage; each later stage doubles them.
        depth: stages; each after the first halves the image (stride 2). ``null``: one more per halving
            while the smaller side is above 4 pixels (8x8: 2, 28x28: 3, 32x32: 4), at most ``max_depth``.
        max_depth: the most stages ``depth: null`` picks; larger images are first shrunk 4x by a
            strided stem (ResNet's), 2x when one stage more would do.
        blocks: residual blocks per stage.
        dropout: dropout on the pooled features before the linear head only (T30 for CNNs).
        channels_last: run in the channels-last memory format (faster tensor-core convolutions with
            mixed precision on GPUs; no gain on CPUs).
        weight_decay: decay of the convolution and linear weights (T32); ``None``: the optimizer's own.
            Biases and batch norms are never decayed.
        lr: learning rate given to the optimizer; kept here so an LR finder can set it.
        optimizer: the optimizer class and its other arguments (T08).
        scheduler: an optional LR scheduler; ``ReduceLROnPlateau`` watches ``monitor``.
        monitor: the one metric that early stopping, checkpointing and the schedule follow (T57).

    Example::

        model:
          width: 32
          depth: null          # from the image size
          blocks: 1
          dropout: 0.3         # the head only
          lr: 0.003
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: list[int],
        width: int = 32,
        depth: Optional[int] = None,
        max_depth: int = 4,
        blocks: int = 1,
        dropout: float = 0.3,
        channels_last: bool = False,
        weight_decay: Optional[float] = None,
        lr: float = 1e-3,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: Optional[LRSchedulerCallable] = None,
        monitor: Literal["val/acc", "val/f1", "val/loss"] = "val/acc",
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"need in_channels >= 1, got {in_channels}.")
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be [height, width], got {image_size}.")
        for name, value in (("width", width), ("max_depth", max_depth), ("blocks", blocks)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
        if depth is not None and (not isinstance(depth, int) or depth < 1):
            raise ValueError(f"depth must be a whole number >= 1 or null (from the image size), got {depth!r}.")
        check_classifier(num_classes, dropout, weight_decay, lr)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.build_classifier(num_classes, lr=lr, optimizer=optimizer, scheduler=scheduler, monitor=monitor,
                              weight_decay=weight_decay)
        wanted = stages_for(list(image_size))
        stem_stride = 1
        if depth is None:
            while wanted > max_depth and stem_stride < 4:  # large images: ResNet's strided stem first
                stem_stride *= 2
                wanted -= 1
            depth = min(wanted, max_depth)
        self.depth = depth
        self.stem = nn.Sequential(conv_bn(in_channels, width, stride=stem_stride), nn.ReLU(inplace=True))
        layers, channels = [], width
        for stage in range(depth):
            outputs = width * 2 ** stage
            for block in range(blocks):
                layers.append(ResidualBlock(channels, outputs, stride=2 if stage > 0 and block == 0 else 1))
                channels = outputs
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for standardised ``images [B, C, H, W]``."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.pool(self.stages(self.stem(images))).flatten(1)
        return self.head(self.dropout(features))

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(batch["images"])


TASK = Task(
    model=ImageClassifier,
    datamodule=ImageClassificationDataModule,
    links=("in_channels", "num_classes", "image_size"),
    predict_example="--data.predict_path your_images/",
    own_data_example="--data.data_path your_images/   (one sub-folder per class; or IDX files, or an .npz with X, y)",
)
