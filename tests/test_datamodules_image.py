"""The image data module: every source (bundled, ImageFolder, IDX, .npz), T40 and T41, augmentation, and the
exact error for each bad input (named file, the fix, nothing written)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import Augmentation, ImageClassificationDataModule, random_affine
from datamodules.image import channel_statistics
from datamodules.image_io import read_bundled, read_idx, read_images
from datamodules.splits import stratified_split

DIGITS = read_bundled("digits")


def write_idx(path: Path, array: np.ndarray, type_byte: int = 0x08) -> Path:
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(">u1" if type_byte == 0x08 else ">f4").tobytes())
    return path


def write_folder(root: Path, count: int = 60, size=(8, 8), rgb_every: int = 0) -> list[Path]:
    """Digits as PNGs, one sub-folder per class; every ``rgb_every``-th image saved as RGB."""
    paths = []
    for i in range(count):
        folder = root / DIGITS.labels[i]
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(DIGITS.images[i, :, :, 0]).resize((size[1], size[0]))
        if rgb_every and i % rgb_every == 0:
            image = image.convert("RGB")
        paths.append(folder / f"{i:03d}.png")
        image.save(paths[-1])
    return paths


# ----------------------------------------------------------------------------- bundled sets, T40, T41
def test_the_bundled_sets_are_read_offline_with_their_sizes():
    digits, mnist = read_bundled("digits"), read_bundled("MNIST")
    assert digits.images.shape == (1797, 8, 8, 1) and digits.images.dtype == np.uint8
    assert digits.images.max() == 240  # 0..16 read as 0..240, exactly
    assert mnist.images.shape == (5000, 28, 28, 1) and sorted(set(mnist.labels), key=int) == [str(d) for d in range(10)]
    with pytest.raises(ValueError, match=r"unknown bundled image set 'cifar'; choose one of: digits: 1,797"):
        ImageClassificationDataModule(dataset="cifar")


def test_splits_are_stratified_and_seeded_with_validation_carved_from_training():
    """T41: 7:3 train/test per class, then 20% of the training part for validation, the same for the same seed."""
    data = ImageClassificationDataModule(dataset="digits", seed=3)
    splits = data._load_splits()
    train_part, test_part = stratified_split(DIGITS.labels, (0.3,), 3)
    assert len(splits["test"]) == len(test_part) and len(splits["train"]) + len(splits["val"]) == len(train_part)
    assert len(splits["val"]) == pytest.approx(0.2 * len(train_part), abs=10)
    shares = [splits[name].labels.count("7") / len(splits[name]) for name in ("train", "val", "test")]
    assert max(shares) - min(shares) < 0.01
    again = ImageClassificationDataModule(dataset="digits", seed=3)._load_splits()
    assert again["val"].where == splits["val"].where


def test_channel_statistics_are_those_of_every_pixel():
    images = torch.tensor([[[[0, 255]], [[255, 255]]]], dtype=torch.uint8)  # 1 image, 2 channels, 1x2
    stats = channel_statistics(images, chunk=1)
    assert stats["mean"] == pytest.approx([0.5, 1.0]) and stats["std"] == pytest.approx([0.5, 1.0])  # std 0 -> 1


def test_state_travels_and_rebuilds_the_module_for_predict(tmp_path):
    """T40: labels, shape and statistics in ``state_dict``; a module from that state predicts alone."""
    data = ImageClassificationDataModule(dataset="digits")
    state = data.state_dict()
    assert state["shape"] == [1, 8, 8] and state["labels"] == [str(d) for d in range(10)]
    np.savez(tmp_path / "new.npz", X=DIGITS.images[:5, :, :, 0])
    fresh = ImageClassificationDataModule(dataset="mnist", predict_path=str(tmp_path / "new.npz"))
    fresh.load_state_dict(state)
    fresh.setup("predict")
    batch = next(iter(fresh.predict_dataloader()))
    assert "labels" not in batch and batch["images"].shape == (5, 1, 8, 8)
    expected = (torch.from_numpy(DIGITS.images[:5]).permute(0, 3, 1, 2).float() / 255 - state["statistics"]["mean"][0]) \
        / state["statistics"]["std"][0]
    torch.testing.assert_close(batch["images"], expected)
    assert fresh.predict_inputs() == [f"new.npz #{i}" for i in range(5)]


def test_predict_resizes_new_images_to_the_size_the_model_reads(tmp_path):
    files = write_folder(tmp_path / "new", count=3, size=(16, 16))
    data = ImageClassificationDataModule(dataset="digits", predict_path=[str(p) for p in files])
    data.setup("predict")
    assert data.datasets["predict"].images.shape == (3, 1, 8, 8)
    assert data.predict_inputs() == [str(p) for p in files]


# ----------------------------------------------------------------------------- the user's images
def test_an_image_folder_with_train_and_test_folders_keeps_that_split(tmp_path):
    write_folder(tmp_path / "set" / "train", count=80)
    write_folder(tmp_path / "set" / "test", count=30)
    data = ImageClassificationDataModule(data_path=str(tmp_path / "set"))
    splits = data._load_splits()
    assert len(splits["test"]) == 30 and len(splits["train"]) + len(splits["val"]) == 80


def test_mixed_sizes_take_the_most_common_one_and_resize_sets_it(tmp_path, caplog):
    write_folder(tmp_path / "a", count=40, size=(8, 8))
    for path in list((tmp_path / "a").rglob("*.png"))[:5]:
        Image.open(path).resize((12, 10)).save(path)
    data = read_images(str(tmp_path / "a"), "data_path")
    assert data.images.shape[1:] == (8, 8, 1) and "5 of 40 images resized to 8x8 (the most common size" in caplog.text
    assert read_images(str(tmp_path / "a"), "data_path", image_size=(6, 7)).images.shape[1:] == (6, 7, 1)


def test_channels_convert_grey_and_colour_alike(tmp_path):
    write_folder(tmp_path / "a", count=30, rgb_every=3)
    assert read_images(str(tmp_path / "a"), "data_path", channels=3).images.shape[3] == 3
    grey = read_images(str(tmp_path / "a"), "data_path", channels=1)
    order = [int(Path(where).stem) for where in grey.where]  # class by class; the file name is the digit's index
    assert grey.images.shape[3] == 1 and np.array_equal(grey.images, DIGITS.images[order])  # grey saved as RGB: same


def test_idx_files_gzipped_or_not(tmp_path):
    images = write_idx(tmp_path / "train-images-idx3-ubyte.gz", DIGITS.images[:50, :, :, 0])
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array(DIGITS.labels[:50], dtype=np.uint8))
    data = read_images(str(images), "data_path")
    assert data.images.shape == (50, 8, 8, 1) and data.labels == DIGITS.labels[:50]
    assert np.array_equal(read_idx(images, "x"), DIGITS.images[:50, :, :, 0])
    floats = write_idx(tmp_path / "f-images-idx3-ubyte", np.ones((2, 3, 3), dtype=np.float32), type_byte=0x0D)
    assert read_idx(floats, "x").dtype == np.float32


def test_npz_with_colour_images(tmp_path):
    X = np.random.default_rng(0).integers(0, 256, size=(30, 6, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", X=X, y=np.array([i % 3 for i in range(30)]))
    data = ImageClassificationDataModule(data_path=str(tmp_path / "c.npz"), min_label_count=1)
    assert data.in_channels == 3 and data.image_size == [6, 5] and len(data.statistics["mean"]) == 3


# ----------------------------------------------------------------------------- bad input: the exact errors
def test_a_corrupt_image_is_named_or_skipped_and_counted(tmp_path, caplog):
    write_folder(tmp_path / "a", count=40)
    broken = tmp_path / "a" / "3" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(ValueError) as error:
        read_images(str(tmp_path / "a"), "data_path")
    assert str(error.value).startswith(f"data_path: {broken}: cannot read the image (")
    assert str(error.value).endswith("Remove or replace the file, or set data.bad_images: skip to leave unreadable "
                                     "images out (they are counted).")
    data = read_images(str(tmp_path / "a"), "data_path", bad_images="skip")
    assert len(data) == 40 and data.skipped == [str(broken)]
    assert f"data_path: 1 unreadable image left out (bad_images: skip), e.g. {broken}." in caplog.text


def test_folder_layout_errors(tmp_path):
    (tmp_path / "one" / "cat").mkdir(parents=True)
    Image.fromarray(DIGITS.images[0, :, :, 0]).save(tmp_path / "one" / "cat" / "a.png")
    with pytest.raises(ValueError, match=r"has 1 class folder\. A labelled image folder holds one sub-folder per class"):
        read_images(str(tmp_path / "one"), "data_path")
    (tmp_path / "one" / "dog").mkdir()
    with pytest.raises(ValueError) as error:
        read_images(str(tmp_path / "one"), "data_path")
    assert str(error.value) == (f"data_path: class folder {tmp_path / 'one' / 'dog'} holds no images (.png, .jpg, .jpeg, "
                                ".bmp, .gif, .tif, .tiff, .webp). Add images or remove the folder.")
    write_folder(tmp_path / "mixed", count=20, rgb_every=2)
    with pytest.raises(ValueError, match=r"mixes grey and colour images, e\.g\. .*0\d\d\.png \(1 channel\) and "
                                         r".*\.png \(3 channels\)\. Set data\.channels: 1 \(all grey\) or 3 \(all RGB\)\."):
        read_images(str(tmp_path / "mixed"), "data_path")


def test_idx_and_npz_errors(tmp_path):
    (tmp_path / "x-images-idx3-ubyte").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match=r"is not an IDX file \(its first bytes are 504b0304; IDX starts with 00 00"):
        read_idx(tmp_path / "x-images-idx3-ubyte", "data_path")
    path = write_idx(tmp_path / "t-images-idx3-ubyte", DIGITS.images[:4, :, :, 0])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"the header says 4x8x8 values \(256 bytes\) but the file holds 246: truncated"):
        read_idx(path, "data_path")
    lonely = write_idx(tmp_path / "u-images-idx3-ubyte", DIGITS.images[:4, :, :, 0])
    with pytest.raises(ValueError, match=r"no labels file beside .*u-images-idx3-ubyte \(MNIST's naming: "
                                         r"train-labels-idx1-ubyte\)\. Set data\.label_path"):
        read_images(str(lonely), "data_path")
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"has no array X \(arrays: images\); save the images as X and the labels as y"):
        read_images(str(tmp_path / "a.npz"), "data_path")
    np.savez(tmp_path / "b.npz", X=np.zeros((3, 4, 4)), y=np.zeros(2))
    with pytest.raises(ValueError, match=r"X holds 3 images but y 2 labels"):
        read_images(str(tmp_path / "b.npz"), "data_path")
    np.savez(tmp_path / "c.npz", X=np.zeros((3, 4)), y=np.zeros(3))
    with pytest.raises(ValueError, match=r"images of shape \[3, 4\]; expected \[N, H, W\] \(grey\) or \[N, H, W, C\]"):
        read_images(str(tmp_path / "c.npz"), "data_path")
    bad = np.zeros((3, 4, 4), dtype=np.float32)
    bad[1, 0, 0] = np.nan
    np.savez(tmp_path / "d.npz", X=bad, y=np.zeros(3))
    with pytest.raises(ValueError, match=r"image 1 holds NaN or Inf values"):
        read_images(str(tmp_path / "d.npz"), "data_path")
    (tmp_path / "e.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"not a supported image source\. Give an ImageFolder directory"):
        read_images(str(tmp_path / "e.csv"), "data_path")
    with pytest.raises(FileNotFoundError, match=r"data_path: .*nowhere does not exist"):
        read_images(str(tmp_path / "nowhere"), "data_path")


def test_argument_and_label_errors(tmp_path):
    with pytest.raises(ValueError, match=r"resize must be \[height, width\] \(or one number\) of whole numbers >= 1"):
        ImageClassificationDataModule(resize=[8])
    with pytest.raises(ValueError, match=r"channels must be 1 \(grey\), 3 \(RGB\) or null"):
        ImageClassificationDataModule(channels=2)
    with pytest.raises(ValueError, match=r"augment\.degrees must be in \[0, 180\], got 200"):
        ImageClassificationDataModule(degrees=200)
    with pytest.raises(ValueError, match=r"test_path goes with your own data_path"):
        ImageClassificationDataModule(test_path="x")
    np.savez(tmp_path / "rare.npz", X=np.zeros((21, 4, 4), dtype=np.uint8), y=np.array([0] * 10 + [1] * 10 + [2]))
    with pytest.raises(ValueError, match=r"1 label seen fewer than 3 times: '2' \(1x, e\.g\. rare\.npz #20\)"):
        ImageClassificationDataModule(data_path=str(tmp_path / "rare.npz")).labels
    np.savez(tmp_path / "train.npz", X=np.zeros((20, 4, 4), dtype=np.uint8), y=np.array([0, 1] * 10))
    np.savez(tmp_path / "test.npz", X=np.zeros((4, 4, 4), dtype=np.uint8), y=np.array([0, 1, 5, 1]))
    with pytest.raises(ValueError, match=r"test\.npz, test\.npz #2: label '5' of the test split never appears in the "
                                         r"training split \(labels: 0, 1\)"):
        ImageClassificationDataModule(data_path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz")).labels
    with pytest.raises(ValueError, match=r"nothing to predict: pass --data\.predict_path my_images/"):
        ImageClassificationDataModule().setup("predict")


# ----------------------------------------------------------------------------- augmentation
def test_random_affine_moves_images_and_leaves_them_alone_when_off():
    images = torch.zeros(16, 1, 8, 8)
    images[:, :, 3:5, 3:5] = 1.0
    generator = torch.Generator().manual_seed(0)
    moved = random_affine(images, Augmentation(translate=0.25, degrees=0, zoom=0), generator)
    assert (moved - images).abs().flatten(1).amax(1).gt(0.1).float().mean() > 0.5  # most images moved
    assert moved.sum(dim=(1, 2, 3)).sub(4).abs().max() < 1.0  # a shift keeps (most of) the ink
    off = random_affine(images, Augmentation(translate=0.25, p=0.0), generator)
    assert torch.equal(off, images)
    arrow = torch.zeros(1, 1, 4, 4)
    arrow[0, 0, :, 0] = 1.0
    flipped = [random_affine(arrow, Augmentation(translate=0, degrees=0, zoom=0, hflip=True),
                             torch.Generator().manual_seed(seed)) for seed in range(8)]
    assert any(torch.allclose(f, arrow.flip(-1), atol=1e-5) for f in flipped)
    assert any(torch.allclose(f, arrow, atol=1e-5) for f in flipped)


def test_augmentation_draws_from_torch_generator_so_a_seed_repeats_it():
    data = ImageClassificationDataModule(dataset="digits", batch_size=32)
    data.setup("fit")
    loader = data._loader("train")
    torch.manual_seed(5)
    first = next(iter(loader))["images"]
    torch.manual_seed(5)
    again = next(iter(loader))["images"]
    torch.manual_seed(6)
    other = next(iter(loader))["images"]
    assert torch.equal(first, again) and not torch.equal(first, other)
