# task: image_classification
"""Training-time augmentation of image batches: random shifts, rotations, zooms and (opt-in) mirror flips.

One random affine transform per image, drawn from torch's generator and applied to the whole
batch at once with ``affine_grid``/``grid_sample`` (bilinear, zeros outside the image). It runs on
the training batches only; validation, test and prediction see the images as they are.

Not torchvision.transforms.v2: torchvision's wheels on PyPI link CUDA's libtorch and do not load
beside the CPU build of torch this project runs on (measured: ``import torchvision`` 0.28 raises
``operator torchvision::nms does not exist``), and the batched transform needs only torch's own
``affine_grid`` and ``grid_sample``. The arguments follow ``RandomAffine``'s (``degrees``,
``translate``, ``scale`` as ``zoom``) and ``RandomHorizontalFlip``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class Augmentation:
    """The random transform of every training image.

    Args:
        translate: largest shift, as a share of the image's width and height (0.1: up to 10%).
        degrees: largest rotation either way, in degrees.
        zoom: largest zoom in or out, as a share (0.1: 0.9x to 1.1x).
        hflip: mirror half the images left-right. Off for digits, letters and other images whose
            mirror image is another thing (a mirrored 2 is no 2); on for photos of objects.
        p: share of the images transformed at all (the rest pass unchanged).
    """

    translate: float = 0.1
    degrees: float = 10.0
    zoom: float = 0.1
    hflip: bool = False
    p: float = 1.0

    def __post_init__(self) -> None:
        for name, value, top in (("translate", self.translate, 1.0), ("zoom", self.zoom, 1.0), ("p", self.p, 1.0)):
            if not 0.0 <= value <= top:
                raise ValueError(f"augment.{name} must be in [0, {top:g}], got {value}.")
        if not 0.0 <= self.degrees <= 180.0:
            raise ValueError(f"augment.degrees must be in [0, 180], got {self.degrees}.")

    @property
    def active(self) -> bool:
        return self.p > 0 and (self.translate > 0 or self.degrees > 0 or self.zoom > 0 or self.hflip)


def random_affine(images: torch.Tensor, augmentation: Augmentation,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``images [B, C, H, W]`` (float) each moved by its own random shift, rotation, zoom and flip.

    Example:
        >>> x = torch.zeros(4, 1, 8, 8); x[:, :, 3:5, 3:5] = 1
        >>> y = random_affine(x, Augmentation(translate=0.25, degrees=0, zoom=0), torch.Generator().manual_seed(0))
        >>> y.shape, bool((y != x).any())
        (torch.Size([4, 1, 8, 8]), True)
    """
    if not augmentation.active or len(images) == 0:
        return images
    batch = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(batch, generator=generator) * (high - low) + low

    angle = uniform(-augmentation.degrees, augmentation.degrees) * (math.pi / 180)
    zoom = uniform(1 - augmentation.zoom, 1 + augmentation.zoom)
    # affine_grid's coordinates run from -1 to 1, so a shift of a share s of the side is 2 s
    shift = torch.stack([uniform(-augmentation.translate, augmentation.translate) * 2 for _ in range(2)], dim=1)
    flip = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0) if augmentation.hflip \
        else torch.ones(batch)
    keep = torch.rand(batch, generator=generator) >= augmentation.p
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom  # the grid maps output to input: the inverse zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
                         torch.stack([sin * flip, cos, shift[:, 1]], dim=1)], dim=1)
    theta[keep] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    grid = torch.nn.functional.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
