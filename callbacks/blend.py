"""T63: blend the network with a classical model, the weight fitted on validation predictions only.

The classical model is scikit-learn's: TF-IDF word n-grams + logistic regression for texts, and
logistic regression on the standardised, flattened inputs for series and images (series padded or
cut to the training split's longest). Its regularisation is chosen by cross-validation on the
training split; the blend weight ``w`` of ``(1 - w) * p_network + w * p_classical`` by the
validation split's log-likelihood. The test split is never read to fit either.

:class:`ClassicalBlend` fits both when ``fit`` ends, with the best checkpoint's weights, and stores
them as ``checkpoints/blend.pkl`` beside that checkpoint: ``test`` and ``predict --ckpt_path`` of that
checkpoint (not of ``last.ckpt`` or a snapshot beside it), and an ensemble with it as a member, use the blend
with nothing else at hand. ``blend.pkl`` is a pickle (the way
scikit-learn models are stored): load only the ones your own runs wrote.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override

from .ensemble import scores
from .notices import notice
from .reporting import report_summary
from .wandb_io import run_directory, write_atomically

BLEND_FILE = "blend.pkl"
WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 21))  # the grid of classical-model weights tried
SMALL_VALIDATION = 100  # fewer validation examples: the weight is said to be unreliable
CS = (0.25, 1.0, 4.0, 16.0)  # logistic regression's inverse regularisation, chosen by 3-fold CV (log-loss) on train


class PadFlatten:
    """Series ``[time, channels]`` (a list) or images ``[N, C, H, W]`` to rows of one length: series zero-padded
    (or cut) to ``length`` steps, then flattened. A scikit-learn transformer (``fit``/``transform``)."""

    def __init__(self) -> None:
        self.length: Optional[int] = None

    def fit(self, inputs: Any, labels: Any = None) -> PadFlatten:
        self.length = max(len(x) for x in inputs) if isinstance(inputs, list) else None
        return self

    def transform(self, inputs: Any) -> np.ndarray:
        if not isinstance(inputs, list):
            return np.asarray(inputs, dtype=np.float32).reshape(len(inputs), -1)
        assert self.length is not None
        rows = np.zeros((len(inputs), self.length * inputs[0].shape[1]), dtype=np.float32)
        for i, series in enumerate(inputs):
            cut = np.asarray(series[: self.length], dtype=np.float32)
            rows[i, : cut.size] = cut.reshape(-1)
        return rows

    def fit_transform(self, inputs: Any, labels: Any = None) -> np.ndarray:
        return self.fit(inputs).transform(inputs)


def classical_model(inputs: Any, labels: Sequence[int], seed: int = 0) -> Any:
    """A fitted scikit-learn pipeline for ``inputs`` (a list of texts, a list of series, or an image array)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = LogisticRegressionCV(Cs=list(CS), cv=3, max_iter=2000, random_state=seed, scoring="neg_log_loss",
                                l1_ratios=(0.0,), use_legacy_attributes=False)
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], str):
        pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), head)
    else:
        pipeline = make_pipeline(PadFlatten(), StandardScaler(), head)
    return pipeline.fit(inputs, np.asarray(labels))


def classical_probabilities(model: Any, inputs: Any, num_classes: int) -> np.ndarray:
    """``[N, num_classes]`` probabilities, columns in label-index order (a class absent from training gets 0)."""
    probs = model.predict_proba(inputs)
    out = np.zeros((probs.shape[0], num_classes))
    out[:, model.classes_.astype(int)] = probs
    return out


def blend(network: np.ndarray, classical: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * network + weight * classical``."""
    return (1.0 - weight) * np.asarray(network) + weight * np.asarray(classical)


def fit_blend_weight(network: np.ndarray, classical: np.ndarray, labels: Sequence[int],
                     weights: Sequence[float] = WEIGHTS) -> tuple[float, list[float]]:
    """The classical model's weight with the lowest log-likelihood on these (validation) predictions, and the
    loss at every weight tried. A tie keeps the smaller weight (the network alone at 0)."""
    target = np.asarray(labels)
    losses = []
    for w in weights:
        p = blend(network, classical, w)[np.arange(len(target)), target]
        losses.append(float(-np.log(np.clip(p, 1e-12, None)).mean()))
    best = min(range(len(weights)), key=lambda i: (round(losses[i], 9), weights[i]))
    return float(weights[best]), losses


def network_probabilities(pl_module: LightningModule, loader: Any) -> np.ndarray:
    """The model's probabilities (its ``predict_step``) over ``loader``'s batches, in order, in eval mode."""
    was_training = pl_module.training
    pl_module.eval()
    out = []
    try:
        with torch.no_grad():
            for i, batch in enumerate(loader):
                batch = {k: v.to(pl_module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
                out.append(pl_module.predict_step(batch, i).float().cpu())
    finally:
        pl_module.train(was_training)
    return torch.cat(out).numpy().astype(np.float64)


def load_blend(folder: Path) -> Optional[dict[str, Any]]:
    """The blend stored in ``folder`` (a run's ``checkpoints/``), or ``None`` when there is none."""
    path = Path(folder) / BLEND_FILE
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return pickle.load(handle)  # noqa: S301 - written by this project's own ClassicalBlend, see the module doc


def blend_for(checkpoint: str | Path) -> Optional[dict[str, Any]]:
    """The blend stored beside ``checkpoint`` when it was fitted for that checkpoint's weights, else ``None``
    (``last.ckpt`` or a snapshot in the same folder are other weights)."""
    stored = load_blend(Path(checkpoint).parent)
    return stored if stored is not None and stored.get("checkpoint") == Path(checkpoint).name else None


def blended_probabilities(stored: dict[str, Any], network: np.ndarray, inputs: Any) -> np.ndarray:
    """Blend ``network`` probabilities with the stored classical model's on the same ``inputs``."""
    classical = classical_probabilities(stored["model"], inputs, network.shape[1])
    return blend(network, classical, stored["weight"])


class ClassicalBlend(Callback):
    """Fit a classical model and the blend weight when fit ends; report the blend on validation and test (T63).

    With the best checkpoint's weights (the monitored ``ModelCheckpoint``; the weights in memory when
    there is none, and then the blend is reported but applies to no checkpoint), the callback fits the classical model on the training split, picks the blend
    weight on the validation split and stores both as ``checkpoints/blend.pkl``. The run summary gets
    ``blend/weight`` and, for validation and (after every test) the test split, the network's, the
    classical model's and the blend's ``acc``, ``nll`` and ``ece`` (``val/blend_acc``, ``test/classical_nll``, ...).

    The data module needs ``split_inputs``, ``split_labels`` and ``ordered_loader`` (every task's has them).

    Args:
        seed: seed of the cross-validation folds.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.ClassicalBlend
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.stored: Optional[dict[str, Any]] = None

    @staticmethod
    def _usable(trainer: Trainer) -> bool:
        data = trainer.datamodule
        if all(hasattr(data, name) for name in ("split_inputs", "split_labels", "ordered_loader")):
            return True
        notice(__name__, "ClassicalBlend: the data module has no split_inputs/split_labels/ordered_loader; no blend.")
        return False

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run or trainer.interrupted or not self._usable(trainer):
            return
        run_dir = run_directory(trainer)  # on every rank: it may broadcast; rank zero does the rest
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        with best_weights(trainer, pl_module) as best:
            network = network_probabilities(pl_module, data.ordered_loader("val"))
        labels = data.split_labels("val")
        model = classical_model(data.split_inputs("train"), data.split_labels("train"), self.seed)
        classical = classical_probabilities(model, data.split_inputs("val"), network.shape[1])
        weight, _ = fit_blend_weight(network, classical, labels)
        if len(labels) < SMALL_VALIDATION:
            notice(__name__, f"ClassicalBlend: the weight is chosen on {len(labels)} validation examples, the split "
                             "that also chose the network's checkpoint (so the network looks better there than it "
                             "is): raise data.val_fraction, or give a val_path, for a weight to trust.")
        self.stored = {"model": model, "weight": weight, "labels": list(getattr(data, "labels", [])),
                       "checkpoint": Path(best.path).name if best.path else None}  # the weights it was fitted with
        path = (Path(best.path).parent if best.path else run_dir / "checkpoints") / BLEND_FILE  # beside the checkpoint
        write_atomically(path, lambda partial: partial.write_bytes(pickle.dumps(self.stored)))
        summary = {"blend/weight": weight, **_prefixed("val", network, classical, weight, labels)}
        report_summary(trainer, summary, run_dir)
        rank_zero_info(f"ClassicalBlend: weight {weight:.2f} on the classical model (chosen on validation): val/acc "
                       f"network {summary['val/network_acc']:.4f}, classical {summary['val/classical_acc']:.4f}, "
                       f"blend {summary['val/blend_acc']:.4f}; saved {path}.")

    @override
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run or not self._usable(trainer):
            return
        run_dir = run_directory(trainer)  # on every rank: it may broadcast
        stored = self.stored
        if stored is None and trainer.ckpt_path:
            stored = blend_for(trainer.ckpt_path)
        if stored is None or not trainer.is_global_zero:
            return
        data = trainer.datamodule
        network = network_probabilities(pl_module, data.ordered_loader("test"))
        classical = classical_probabilities(stored["model"], data.split_inputs("test"), network.shape[1])
        summary = _prefixed("test", network, classical, stored["weight"], data.split_labels("test"))
        report_summary(trainer, summary, run_dir)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}


def _prefixed(split: str, network: np.ndarray, classical: np.ndarray, weight: float,
              labels: Sequence[int]) -> dict[str, float]:
    out = {}
    for name, probs in (("network", network), ("classical", classical), ("blend", blend(network, classical, weight))):
        for key, value in scores(probs, labels).items():
            out[f"{split}/{name}_{key}"] = value
    return out


class best_weights:  # noqa: N801 - a context manager used as `with best_weights(...)`
    """Within the block the module holds the monitored checkpoint's best weights; its own weights come back after.

    Without a monitored ``ModelCheckpoint`` that saved something, the weights in memory are used as they are.
    """

    def __init__(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from .best_metrics import monitored_checkpoint

        best = monitored_checkpoint(trainer)
        self.path = getattr(best, "best_model_path", "") if best is not None else ""
        self.pl_module = pl_module
        self.saved: Optional[dict[str, torch.Tensor]] = None

    def __enter__(self) -> best_weights:
        if self.path and Path(self.path).is_file():
            self.saved = {k: v.detach().clone() for k, v in self.pl_module.state_dict().items()}
            weights = torch.load(self.path, map_location=self.pl_module.device, weights_only=True)["state_dict"]
            self.pl_module.load_state_dict(weights)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            self.pl_module.load_state_dict(self.saved)
