"""Hard examples: what the model gets most wrong, as a table a person reads, and training losses to oversample.

Pure parts: :func:`example_losses` (each example's cross-entropy from its probabilities) and
:func:`hardest` (the rows of the table). :class:`HardExamples` runs them with the best checkpoint's
weights when fit ends (the validation split) and after every test (the test split).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override

from .blend import best_weights, network_probabilities
from .contract import label_names
from .reporting import wandb_media
from .wandb_io import find_wandb_logger, run_directory, write_atomically

FILES = {"val": "hard_examples.csv", "test": "hard_examples_test.csv", "train": "train_losses.csv"}
COLUMNS = ("index", "input", "label", "predicted", "p_label", "p_predicted", "loss")


def example_losses(probabilities: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Each example's cross-entropy, ``-log p(true label)``."""
    target = np.asarray(labels)
    return -np.log(np.clip(np.asarray(probabilities)[np.arange(len(target)), target], 1e-12, None))


def describe(inputs: Any, index: int) -> str:
    """What the table shows for one input: the text itself, or the shape of a series or an image."""
    item = inputs[index]
    if isinstance(item, str):
        return item
    shape = "x".join(str(n) for n in np.shape(item))
    return f"#{index} ({shape})"


def hardest(probabilities: np.ndarray, labels: Sequence[int], names: Sequence[str], inputs: Any,
            count: int) -> list[dict[str, Any]]:
    """The ``count`` highest-loss examples, highest first, as rows with ``COLUMNS``."""
    probs = np.asarray(probabilities)
    losses = example_losses(probs, labels)
    rows = []
    for i in np.argsort(-losses, kind="stable")[:count]:
        predicted = int(probs[i].argmax())
        rows.append({"index": int(i), "input": describe(inputs, int(i)), "label": names[labels[i]],
                     "predicted": names[predicted], "p_label": round(float(probs[i, labels[i]]), 4),
                     "p_predicted": round(float(probs[i, predicted]), 4), "loss": round(float(losses[i]), 4)})
    return rows


def write_rows(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> Path:
    """``rows`` as a CSV file, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return write_atomically(path, lambda partial: partial.write_text(buffer.getvalue(), encoding="utf-8"))


def _picture(item: np.ndarray) -> np.ndarray:
    """An image ``[C, H, W]`` (standardised) as ``[H, W]`` or ``[H, W, 3]`` in [0, 1] for display."""
    image = np.moveaxis(np.asarray(item, dtype=np.float64), 0, -1)
    image = (image - image.min()) / max(float(image.max() - image.min()), 1e-12)
    return image[..., 0] if image.shape[-1] == 1 else image


def figure(rows: Sequence[dict[str, Any]], inputs: Any, title: str) -> Any:
    """A grid of the hardest series (line plots) or images, each captioned true -> predicted (p); ``None`` for texts."""
    if not rows or isinstance(inputs[rows[0]["index"]], str):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = rows[:16]
    columns = min(4, len(shown))
    lines = (len(shown) + columns - 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(3 * columns, 2.4 * lines), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, shown):
        item = np.asarray(inputs[row["index"]])
        if item.ndim == 3:
            ax.imshow(_picture(item), cmap="gray")
        else:
            ax.axis("on")
            ax.plot(item)
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(f"{row['label']} -> {row['predicted']} ({row['p_predicted']:.2f})", fontsize=8, color="crimson")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


class HardExamples(Callback):
    """The highest-loss examples with their true and predicted labels: a CSV in the run folder and a W&B table.

    When fit ends, with the best checkpoint's weights: ``hard_examples.csv`` (validation split) and, with
    ``train_losses``, ``train_losses.csv`` (every training example's loss, in the data module's order:
    ``--data.oversample`` of a second run reads it). After every test: ``hard_examples_test.csv``.
    Series and images also get a figure (``hard_examples.png``, ``hard_examples_test.png``); W&B gets
    the table (``hard_examples``, ``hard_examples_test``) with the texts, plots or images in it.

    The data module needs ``split_inputs``, ``split_labels`` and ``ordered_loader`` (every task's has them).

    Args:
        count: rows in the table.
        train_losses: also write every training example's loss (for oversampling in a second run).

    Raises:
        ValueError: ``count`` below 1.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.HardExamples
              init_args: {count: 20, train_losses: true}
    """

    def __init__(self, count: int = 20, train_losses: bool = True) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}.")
        self.count = count
        self.train_losses = train_losses

    @staticmethod
    def _usable(trainer: Trainer) -> bool:
        data = trainer.datamodule
        return not trainer.fast_dev_run and all(
            hasattr(data, name) for name in ("split_inputs", "split_labels", "ordered_loader"))

    def _table(self, trainer: Trainer, pl_module: LightningModule, split: str, run_dir: Path) -> Optional[Path]:
        data = trainer.datamodule
        probs = network_probabilities(pl_module, data.ordered_loader(split))
        labels, inputs = data.split_labels(split), data.split_inputs(split)
        names = label_names(trainer) or [str(i) for i in range(probs.shape[1])]
        rows = hardest(probs, labels, names, inputs, self.count)
        path = write_rows(run_dir / FILES[split], rows)
        fig = figure(rows, inputs, f"hardest {split} examples: true -> predicted (p)")
        picture = None
        if fig is not None:
            import matplotlib.pyplot as plt

            picture = path.with_suffix(".png")
            write_atomically(picture, lambda partial: fig.savefig(partial, format="png", dpi=100))
            plt.close(fig)
        if find_wandb_logger(trainer) is not None:
            self._wandb_table(trainer, rows, inputs, f"hard_examples{'' if split == 'val' else '_' + split}")
        rank_zero_info(f"HardExamples: the {len(rows)} highest-loss {split} examples are in {path}.")
        return path

    @staticmethod
    def _wandb_table(trainer: Trainer, rows: Sequence[dict[str, Any]], inputs: Any, key: str) -> None:
        import wandb

        media = not isinstance(inputs[rows[0]["index"]], str) if rows else False
        columns = list(COLUMNS) + (["view"] if media else [])
        table = wandb.Table(columns=columns)
        for row in rows:
            values = [row[c] for c in COLUMNS]
            if media:
                item = np.asarray(inputs[row["index"]])
                if item.ndim == 3:
                    values.append(wandb.Image(_picture(item)))
                else:
                    values.append(wandb.Image(_series_picture(item)))
            table.add_data(*values)
        wandb_media(trainer, {key: table})

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.interrupted or not self._usable(trainer):
            return
        run_dir = run_directory(trainer)  # on every rank: it may broadcast; rank zero does the rest
        if not trainer.is_global_zero:
            return
        with best_weights(trainer, pl_module):
            self._table(trainer, pl_module, "val", run_dir)
            if self.train_losses:
                data = trainer.datamodule
                probs = network_probabilities(pl_module, data.ordered_loader("train"))
                labels = data.split_labels("train")
                losses = example_losses(probs, labels)
                write_rows(run_dir / FILES["train"], [{"index": i, "label": int(label), "loss": round(float(loss), 6)}
                                                      for i, (label, loss) in enumerate(zip(labels, losses))],
                           ("index", "label", "loss"))

    @override
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._usable(trainer):
            return
        run_dir = run_directory(trainer)  # on every rank: it may broadcast
        if trainer.is_global_zero:
            self._table(trainer, pl_module, "test", run_dir)


def _series_picture(series: np.ndarray) -> np.ndarray:
    """A small line plot of a series ``[time, channels]`` as an RGB array (for a W&B table cell)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2.4, 1.2), dpi=60)
    ax.plot(series, linewidth=1)
    ax.axis("off")
    fig.tight_layout(pad=0.1)
    fig.canvas.draw()
    picture = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return picture
