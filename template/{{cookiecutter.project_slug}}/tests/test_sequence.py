# task: sequence_classification
"""The sequence task: the model on its own, and the command line on series (bundled, a user's files, predict).

T40 (scaling fitted on the training split, stored in the checkpoint), T43 (padding and lengths),
T44 (the strided Conv1D front-end).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from {{ cookiecutter.package_name }}.datamodules.sequence_io import aeon_data_dir, read_bundled
from {{ cookiecutter.package_name }}.models.sequence_classification import SequenceClassifier


def make_model(**kwargs) -> SequenceClassifier:
    torch.manual_seed(0)
    arguments = dict(input_size=3, num_classes=4, hidden_size=6, dropout=0.0)
    arguments.update(kwargs)
    return SequenceClassifier(**arguments).eval()


def padded(*lengths: int, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded random series ``[B, T, C]`` of ``lengths``, the same values for the same length."""
    series = torch.zeros(len(lengths), max(lengths), channels)
    for row, length in enumerate(lengths):
        series[row, :length] = torch.randn(length, channels, generator=torch.Generator().manual_seed(length))
    return series, torch.tensor(lengths)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["unidirectional", "bidirectional"])
@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
def test_padding_does_not_change_the_logits(bidirectional, pooling):
    """T43: a series gets the same logits alone and next to a longer one (padding never read)."""
    model = make_model(bidirectional=bidirectional, pooling=pooling)
    with torch.no_grad():
        alone = model(*padded(5))
        together = model(*padded(5, 12, 8))
    assert together.shape == (3, 4)
    torch.testing.assert_close(together[0], alone[0], rtol=1e-5, atol=1e-6)


def test_the_front_end_shortens_series_into_its_own_channels():
    """T44: stride 4 reads a quarter of the steps, with ``downsample_channels`` filters as the RNN's input."""
    model = make_model(downsample=4, downsample_channels=16)
    assert model.rnn.input_size == 16 and model.downsample.conv.in_channels == 3
    series, lengths = padded(40, 9)
    out, short = model.downsample(series, lengths)
    assert out.shape == (2, 10, 16) and short.tolist() == [10, 2]
    with torch.no_grad():
        torch.testing.assert_close(model(*padded(9, 40))[0], model(*padded(9))[0], rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"need input_size >= 1 \(channels\), got 0"):
        SequenceClassifier(input_size=0, num_classes=2)
    with pytest.raises(ValueError, match=r"input_dropout must be in \[0, 1\), got 1.0"):
        SequenceClassifier(input_size=1, num_classes=2, input_dropout=1.0)
    with pytest.raises(ValueError, match=r"downsample_channels must be >= 1 or null \(hidden_size\), got 0"):
        SequenceClassifier(input_size=1, num_classes=2, downsample=2, downsample_channels=0)


def test_fit_on_the_bundled_default_logs_metrics_plots_and_config(workspace):
    """``fit --config configs/default.yaml`` on GunPoint: an offline W&B run with the metrics, the plots, the config."""
    workspace.main("fit", "--config", workspace.default_config, "--trainer.max_epochs", 3)
    run_id, run_dir = workspace.only_run()
    for name in ("examples.png", "confusion_test.png", "confusion_test.json", "lr_finder.png", "summary.json"):
        assert (run_dir / name).is_file(), name
    confusion = json.loads((run_dir / "confusion_test.json").read_text())
    assert confusion["labels"] == ["1", "2"] and sum(map(sum, confusion["counts"])) == 150  # GunPoint's test split
    run = workspace.offline_run(run_id)
    assert run.exit_code == 0 and run.config["data"]["dataset"] == "GunPoint"
    assert len(run.metric("val/loss")) == 3 and len(run.metric("test/acc")) == 1
    right = sum(confusion["counts"][i][i] for i in range(2)) / 150
    assert run.summary["test/acc"] == pytest.approx(right, abs=1e-6)  # the matrix is of the tested checkpoint
    media = " ".join(run.files)
    assert "data/examples" in media and "test/confusion" in media, run.files
    assert json.loads((run_dir / "summary.json").read_text())["lr_finder/steps"] > 0


def write_user_files(folder, fmt: str):
    """GunPoint's training series as a user's file in ``fmt`` (the train part: a 7:3 split follows)."""
    train, _ = read_bundled("GunPoint")
    if fmt == "ts":
        path = folder / "mine.ts"
        shutil.copy(aeon_data_dir() / "GunPoint" / "GunPoint_TRAIN.ts", path)
    elif fmt == "npz":
        path = folder / "mine.npz"
        X = np.stack([s.T for s in train.series])  # [N, C, T]: the channels-first layout, found by layout auto
        np.savez(path, X=X, y=np.array(train.labels))
    else:
        path = folder / "mine.csv"
        rows = ["label," + ",".join(f"t{i}" for i in range(train.series[0].shape[0]))]
        rows += [label + "," + ",".join(f"{v:.6f}" for v in s[:, 0]) for s, label in zip(train.series, train.labels)]
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["ts", "npz", "csv"])
def test_a_users_file_trains_through_the_cli(workspace, fmt):
    path = write_user_files(workspace.root, fmt)
    workspace.main("fit", "--config", workspace.default_config, "--data.data_path", path, "--trainer.max_epochs", 1)
    run_id, run_dir = workspace.only_run()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["data_path"] == str(path)
    run = workspace.offline_run(run_id)
    assert len(run.metric("test/acc")) == 1  # 30% of the 50 series held out: 15 tested
    assert json.loads((run_dir / "confusion_test.json").read_text())["counts"] and run.exit_code == 0


def test_predict_from_the_checkpoint_alone_applies_its_scaling(workspace, tmp_path, monkeypatch):
    """T40: predict on a new file with nothing but the checkpoint: its labels and training-split scaling.

    The predictions of GunPoint's test file agree with the test accuracy of the same checkpoint, which
    the fit measured with the scaling fitted on its training split."""
    workspace.main("fit", "--config", workspace.default_config, "--trainer.max_epochs", 3)
    run_id, run_dir = workspace.only_run()
    best, _ = workspace.checkpoints(run_dir)
    tested = workspace.offline_run(run_id).summary["test/acc"]
    statistics = torch.load(best, map_location="cpu", weights_only=True)["SequenceClassificationDataModule"]["statistics"]
    assert statistics, "the scaling statistics travel in the checkpoint"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    new = shutil.copy(aeon_data_dir() / "GunPoint" / "GunPoint_TEST.ts", elsewhere / "new.ts")
    workspace.main("predict", "--ckpt_path", best, "--data.predict_path", new, "--data.dataset", "ArrowHead")
    (path,) = sorted(elsewhere.rglob("predictions.jsonl"))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    _, test = read_bundled("GunPoint")
    assert len(rows) == 150 and rows[0]["series"] == "#0: 150 steps x 1 channel"
    assert all(set(row["probabilities"]) == {"1", "2"} for row in rows)  # the checkpoint's labels, not ArrowHead's
    right = sum(row["label"] == label for row, label in zip(rows, test.labels)) / len(rows)
    assert right == pytest.approx(tested, abs=1e-6)


def test_resume_keeps_the_checkpoint_scaling(workspace):
    """A resumed fit rebuilds the data module from the checkpoint: the same statistics, the same run."""
    workspace.fit(epochs=1)
    run_id, run_dir = workspace.only_run()
    _, last = workspace.checkpoints(run_dir)
    before = torch.load(last, map_location="cpu", weights_only=True)["SequenceClassificationDataModule"]
    # another validation share would fit other statistics on another training part
    workspace.fit("--ckpt_path", last, "--data.val_fraction", 0.4, epochs=2)
    after = torch.load(last, map_location="cpu", weights_only=True)
    assert workspace.only_run() == (run_id, run_dir) and after["epoch"] == 1
    assert after["SequenceClassificationDataModule"]["statistics"] == before["statistics"]
