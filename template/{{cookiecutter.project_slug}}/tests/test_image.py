# task: image_classification
"""The image task: the CNN on its own, and the command line on images (bundled, a user's folder/IDX/.npz, predict).

T20 (He init of the convolutions), T30 (dropout on the head only), T34 (batch norm, no bias before
it), T40 (per-channel statistics of the training split, stored in the checkpoint); augmentation on the
training batches only.
"""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
import torch
from torch import nn

from {{ cookiecutter.package_name }}.datamodules.image import ImageClassificationDataModule
from {{ cookiecutter.package_name }}.datamodules.image_io import read_bundled
from {{ cookiecutter.package_name }}.datamodules.splits import stratified_split
from {{ cookiecutter.package_name }}.models.image_classification import ImageClassifier, ResidualBlock


def make_model(**kwargs) -> ImageClassifier:
    torch.manual_seed(0)
    arguments = dict(in_channels=1, num_classes=10, image_size=[8, 8], width=8)
    arguments.update(kwargs)
    return ImageClassifier(**arguments)


@pytest.mark.parametrize("size,channels,stages", [([8, 8], 1, 2), ([28, 28], 1, 3), ([32, 32], 3, 4), ([48, 64], 3, 4)])
def test_the_network_is_sized_for_the_image(size, channels, stages):
    model = make_model(in_channels=channels, image_size=size).eval()
    assert model.depth == stages
    logits = model(torch.randn(5, channels, *size))
    assert logits.shape == (5, 10)


def test_batch_norm_follows_every_convolution_without_bias_and_dropout_is_on_the_head_only():
    """T34: a convolution followed by a batch norm has no bias; T30 for CNNs: the only dropout is before the head."""
    model = make_model()
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions and all(conv.bias is None for conv in convolutions)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == len(convolutions)
    dropouts = [name for name, m in model.named_modules() if isinstance(m, nn.Dropout)]
    assert dropouts == ["dropout"]
    seen = {}
    model.head.register_forward_pre_hook(lambda module, inputs: seen.setdefault("head", inputs[0]))
    model.train()(torch.randn(64, 1, 8, 8))
    assert (seen["head"] == 0).float().mean() > 0.2, "the head's input is dropped out in training"


def test_each_residual_block_starts_as_its_shortcut():
    """The last batch norm of a branch starts at zero (Goyal et al. 2017): a new block is the identity (then ReLU)."""
    block = ResidualBlock(4, 4).eval()
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_channels_last_gives_the_same_logits():
    x = torch.randn(3, 3, 16, 16)
    plain = make_model(in_channels=3, image_size=[16, 16]).eval()
    fast = make_model(in_channels=3, image_size=[16, 16], channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"need in_channels >= 1, got 0"):
        make_model(in_channels=0)
    with pytest.raises(ValueError, match=r"depth must be a whole number >= 1 or null \(from the image size\), got 0"):
        make_model(depth=0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        make_model(dropout=1.0)


def test_augmentation_reaches_the_training_batches_only():
    """Training batches are augmented (they differ from the images standardised as they are); validation,
    test and prediction batches are the images standardised with the training split's statistics."""
    data = ImageClassificationDataModule(dataset="digits", batch_size=64)
    data.setup("fit")
    data.setup("test")
    mean, std = data.statistics["mean"][0], data.statistics["std"][0]
    raw = {name: data.datasets[name].images[:64].float() / 255 for name in ("train", "val", "test")}
    torch.manual_seed(0)
    for name, loader in (("val", data.val_dataloader()), ("test", data.test_dataloader())):
        batch = next(iter(loader))
        torch.testing.assert_close(batch["images"], (raw[name] - mean) / std)
    train = data._loader("train", shuffle=False)  # the training collate on the first 64 images, in order
    batch = next(iter(train))
    assert not torch.allclose(batch["images"], (raw["train"] - mean) / std)
    assert batch["images"].shape == (64, 1, 8, 8)


def test_statistics_come_from_the_training_split_only():
    """T40: the mean/std are those of the training images, not of all the data."""
    data = ImageClassificationDataModule(dataset="digits")
    train = data._load_splits()["train"].images.astype(np.float64) / 255
    everything = read_bundled("digits").images.astype(np.float64) / 255
    assert data.statistics["mean"][0] == pytest.approx(train.mean(), abs=1e-7)
    assert data.statistics["std"][0] == pytest.approx(train.std(), abs=1e-7)
    assert abs(data.statistics["mean"][0] - everything.mean()) > 1e-4


def test_fit_on_the_bundled_default_logs_metrics_images_and_config(workspace):
    """``fit --config configs/default.yaml`` on the digits: the offline W&B run holds metrics, images and config."""
    workspace.main("fit", "--config", workspace.default_config, "--trainer.max_epochs", 3)
    run_id, run_dir = workspace.only_run()
    for name in ("examples.png", "predictions_test.png", "confusion_test.png", "lr_finder.png", "weight_init.json"):
        assert (run_dir / name).is_file(), name
    confusion = json.loads((run_dir / "confusion_test.json").read_text())
    assert confusion["labels"] == [str(d) for d in range(10)] and sum(map(sum, confusion["counts"])) == 539
    run = workspace.offline_run(run_id)
    assert run.exit_code == 0 and run.config["data"]["dataset"] == "digits" and run.config["model"]["width"] == 32
    assert len(run.metric("val/loss")) == 3 and len(run.metric("test/acc")) == 1
    right = sum(confusion["counts"][i][i] for i in range(10)) / 539
    assert run.summary["test/acc"] == pytest.approx(right, abs=1e-6)
    media = " ".join(run.files)
    for key in ("data/examples", "test/predictions", "test/confusion", "lr_finder"):
        assert key in media, (key, run.files)
    assert run.summary["batch_size/found"] == 128  # 1,008 training images: a larger batch leaves < 10 steps
    applied = json.loads((run_dir / "weight_init.json").read_text())
    assert {row["init"] for row in applied} == {"kaiming_normal"}  # T20: every convolution, nothing else


def write_image_folder(root, count: int = 150, grey_as_rgb: bool = False, sizes=((8, 8),)):
    """Digits as PNG files in one sub-folder per class; sizes cycle through ``sizes``."""
    from PIL import Image

    data = read_bundled("digits")
    files = []
    for i in range(count):
        label = data.labels[i]
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(data.images[i, :, :, 0])
        size = sizes[i % len(sizes)]
        image = image.resize((size[1], size[0]))
        if grey_as_rgb and i % 2:
            image = image.convert("RGB")
        path = folder / f"{i:04d}.png"
        image.save(path)
        files.append(path)
    return files


def test_an_image_folder_trains_and_predict_reads_a_folder_or_files_with_the_checkpoint_alone(workspace, tmp_path,
                                                                                                monkeypatch, capsys):
    files = write_image_folder(workspace.root / "mine", sizes=((8, 8), (16, 16)))
    workspace.main("fit", "--config", workspace.default_config, "--data.data_path", workspace.root / "mine",
                   "--trainer.max_epochs", 2)
    run_id, run_dir = workspace.only_run()
    best, _ = workspace.checkpoints(run_dir)
    state = torch.load(best, map_location="cpu", weights_only=True)["ImageClassificationDataModule"]
    assert state["labels"] == [f"digit_{d}" for d in range(10)] and state["shape"] == [1, 8, 8]  # the common size
    assert state["statistics"]["mean"] and state["statistics"]["std"]
    tested = workspace.offline_run(run_id).summary["test/acc"]
    assert 0.0 <= tested <= 1.0

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    workspace.main("predict", "--ckpt_path", best, "--data.predict_path", workspace.root / "mine" / "digit_3")
    out = capsys.readouterr().out
    (path,) = sorted(elsewhere.rglob("predictions.jsonl"))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    threes = sorted(str(p) for p in files if p.parent.name == "digit_3")
    assert [row["image"] for row in rows] == threes  # every image of the folder, in order
    assert all(set(row["probabilities"]) == set(state["labels"]) for row in rows)
    assert f"predictions (all {len(threes)} in runs/" in out  # the table on the screen, the file named
    path.unlink()
    workspace.main("predict", "--ckpt_path", best, "--data.predict_path", json.dumps([str(files[0]), str(files[1])]))
    (path,) = sorted(elsewhere.rglob("predictions.jsonl"))
    assert [json.loads(line)["image"] for line in path.read_text().splitlines()] == [str(files[0]), str(files[1])]


def write_idx(path, array: np.ndarray) -> None:
    """An IDX file (MNIST's format), gzipped when the name ends in .gz."""
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def test_idx_files_keep_their_own_test_split_and_an_npz_trains(workspace):
    data = read_bundled("digits")
    folder = workspace.root / "idx"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", data.images[:300, :, :, 0])
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.array(data.labels[:300], dtype=np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", data.images[300:420, :, :, 0])
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array(data.labels[300:420], dtype=np.uint8))
    workspace.main("fit", "--config", workspace.default_config, "--data.data_path", folder, "--trainer.max_epochs", 1)
    _, run_dir = workspace.only_run()
    confusion = json.loads((run_dir / "confusion_test.json").read_text())
    assert sum(map(sum, confusion["counts"])) == 120  # the t10k file, not 30% of the training file

    np.savez(workspace.root / "mine.npz", X=data.images[:300, :, :, 0], y=np.array(data.labels[:300]))
    workspace.main("fit", "--config", workspace.default_config, "--data.data_path", workspace.root / "mine.npz",
                   "--trainer.max_epochs", 1)
    newest = max(workspace.run_dirs().values(), key=lambda p: p.stat().st_mtime)
    held_out = stratified_split(data.labels[:300], (0.3,), seed=42)[1]  # T41: 7:3 per class, rounded per class
    assert sum(map(sum, json.loads((newest / "confusion_test.json").read_text())["counts"])) == len(held_out)


@pytest.mark.parametrize("case", ["corrupt", "empty class", "grey and colour"])
def test_bad_image_folders_are_refused_by_name_before_anything_is_created(workspace, case):
    folder = workspace.root / "mine"
    write_image_folder(folder, count=60, grey_as_rgb=case == "grey and colour")
    if case == "corrupt":
        bad = folder / "digit_0" / "broken.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        expected = f"error: data_path: {bad}: cannot read the image"
        hint = "set data.bad_images: skip"
    elif case == "empty class":
        (folder / "digit_x").mkdir()
        expected = f"error: data_path: class folder {folder / 'digit_x'} holds no images"
        hint = "Add images or remove the folder."
    else:
        expected = f"error: data_path: {folder} mixes grey and colour images, e.g. "
        hint = "Set data.channels: 1 (all grey) or 3 (all RGB)."
    code, printed = workspace.error("fit", "--config", workspace.default_config, "--data.data_path", folder)
    assert code == 2 and printed.startswith(expected) and hint in printed, printed
    assert sorted(path.name for path in workspace.root.iterdir()) == ["home", "mine"], "no runs/, nothing written"

