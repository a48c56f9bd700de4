"""RNN training-stability tricks, each alone and all together, against the vanilla baseline.

    nice -n 10 .venv-bench/bin/python benchmarks/stability.py [--seeds 3] [--mr-epochs 4] [--ucr-epochs 25]

Two data sets, one budget per data set for every variant, variants interleaved per seed:

- MR (bundled movie-review sentences) with the generated project's own ``TextClassifier``
  (embedding 128 → LSTM 128 → linear, Adam at lr 0.003 as in ``configs/default.yaml``); the vanilla
  variant is the ``vanilla`` preset (no dropout, no clipping, PyTorch's default init).
- UCR ItalyPowerDemand (bundled in aeon) with ``bench_models.SequenceLSTM`` (LSTM 64, Adam 0.01):
  only the callback tricks apply to it.

Tricks: T20-T22 ``WeightInit`` (defaults), T12 ``AutoClip`` (10th percentile), T33 ``MaxNorm`` (3),
T05 ``OptimizerSwitch`` (SWATS LR, on a val/acc plateau of 1 validation), T35 ``EarlyStopping``
restoring the best weights (patience = the budget, so it never stops early: it only restores),
T32 AdamW with weight-decay groups (0.01; none on biases/embeddings), T30 dropout 0.5, T31 locked
dropout 0.5, T31 DropConnect 0.3 on ``weight_hh``, T34 layer norm on the final state. "All together"
switches every one of them on; the "recommended set" only those that helped alone (MR: dropout 0.5
+ AdamW decay groups + DropConnect 0.3 + AutoClip + restore best; UCR: AutoClip + restore best).

Measured per run: validation accuracy after every epoch, the accuracy of the model as ``fit``
returns it ("final"), and the first epoch reaching the target accuracy. Writes
benchmarks/results/stability.md, .json (raw) and .png.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning.pytorch import Callback, Trainer, seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import ROOT, mr, ucr  # noqa: E402
from bench_models import SequenceLSTM  # noqa: E402

from callbacks.clipping import AutoClip  # noqa: E402
from callbacks.early_stopping import EarlyStopping  # noqa: E402
from callbacks.max_norm import MaxNorm  # noqa: E402
from callbacks.optimizer_switch import OptimizerSwitch  # noqa: E402
from callbacks.weight_init import WeightInit  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODEL_FILE = (ROOT / "template" / "{{cookiecutter.project_slug}}" / "src" / "{{cookiecutter.package_name}}" / "models"
              / "text_classification.py")
TARGETS = {"MR": 0.70, "ItalyPowerDemand": 0.93}


def text_classifier_class() -> type:
    """The template's model file is plain Python: load it straight from the template."""
    spec = importlib.util.spec_from_file_location("template_text_classification", MODEL_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TextClassifier


class ValAcc(Callback):
    """Record validation accuracy per epoch; for ``SequenceLSTM`` also log it as ``val/acc`` for the tricks."""

    def __init__(self) -> None:
        self.curve: list[float] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if isinstance(pl_module, SequenceLSTM) and pl_module._seen:
            pl_module.log("val/acc", pl_module._correct / pl_module._seen)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and "val/acc" in trainer.callback_metrics:
            self.curve.append(float(trainer.callback_metrics["val/acc"]))


def callback_tricks(epochs: int) -> dict[str, Callable[[], list[Callback]]]:
    return {
        "init (T20-T22)": lambda: [WeightInit()],
        "AutoClip p10 (T12)": lambda: [AutoClip(percentile=10)],
        "MaxNorm 3 (T33)": lambda: [MaxNorm(3.0)],
        "Adam→SGD switch (T05)": lambda: [OptimizerSwitch(monitor="val/acc", patience=1)],
        "restore best (T35)": lambda: [EarlyStopping(monitor="val/acc", mode="max", patience=epochs + 1)],
    }


def all_callbacks(epochs: int) -> list[Callback]:
    return [factory()[0] for factory in callback_tricks(epochs).values()]


MODEL_TRICKS: dict[str, dict[str, Any]] = {
    "AdamW + decay groups (T32)": {"optimizer": torch.optim.AdamW, "weight_decay": 0.01},
    "dropout 0.5 (T30)": {"dropout": 0.5},
    "locked dropout 0.5 (T31)": {"dropout": 0.5, "locked_dropout": True},
    "DropConnect 0.3 (T31)": {"weight_dropout": 0.3},
    "layer norm (T34)": {"norm": "layer"},
}
# the set the benchmark argues for (the single tricks that helped), on top of the template's dropout 0.5
RECOMMENDED_MODEL = {"optimizer": torch.optim.AdamW, "weight_decay": 0.01, "dropout": 0.5, "weight_dropout": 0.3}


def recommended_callbacks(epochs: int) -> list[Callback]:
    return [AutoClip(percentile=10), EarlyStopping(monitor="val/acc", mode="max", patience=epochs + 1)]


ALL_MODEL = {"optimizer": torch.optim.AdamW, "weight_decay": 0.01, "dropout": 0.5, "locked_dropout": True,
             "weight_dropout": 0.3, "norm": "layer"}


def run_one(data: Any, make_model: Callable[[], Any], callbacks: list[Callback], epochs: int, seed: int) -> dict:
    seed_everything(seed, workers=True, verbose=False)
    model = make_model()
    recorder = ValAcc()
    trainer = Trainer(max_epochs=epochs, callbacks=[recorder, *callbacks], logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                      accelerator="cpu")
    datamodule = data.make()
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    seconds = time.perf_counter() - start
    curve = list(recorder.curve)
    trainer.validate(model, datamodule=datamodule, verbose=False)  # the model as fit returned it
    final = recorder.curve[-1]
    switch = next((c for c in callbacks if isinstance(c, OptimizerSwitch)), None)
    return {"curve": curve, "final": final, "seconds": seconds,
            "switch_step": switch.switch_step if switch else None,
            "sgd_lrs": switch.applied_lrs if switch else None}


def epochs_to(curve: list[float], target: float) -> Optional[int]:
    return next((i + 1 for i, acc in enumerate(curve) if acc >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mr-epochs", type=int, default=4)
    parser.add_argument("--ucr-epochs", type=int, default=25)
    parser.add_argument("--replot", action="store_true", help="only redraw stability.png from stability.json")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads((RESULTS / "stability.json").read_text(encoding="utf-8"))["runs"])
        return
    torch.set_num_threads(1)
    TextClassifier = text_classifier_class()

    mr_data = mr(batch_size=64)
    ucr_data = ucr("ItalyPowerDemand", batch_size=16)

    def text_model(**kwargs: Any) -> Callable[[], Any]:
        base = dict(vocab_size=mr_data.vocab_size, num_classes=mr_data.num_classes, pad_index=mr_data.pad_index,
                    dropout=0.0, lr=0.003, optimizer=torch.optim.Adam)
        return lambda: TextClassifier(**{**base, **kwargs})

    def sequence_model() -> Any:
        return SequenceLSTM(ucr_data.input_size, ucr_data.num_classes, lr=0.01)

    plans: dict[str, tuple[Any, int, dict[str, tuple[Callable[[], Any], Callable[[], list[Callback]]]]]] = {}
    e = args.mr_epochs
    variants = {"vanilla": (text_model(), lambda: [])}
    variants.update({name: (text_model(), factory) for name, factory in callback_tricks(e).items()})
    variants.update({name: (text_model(**kwargs), lambda: []) for name, kwargs in MODEL_TRICKS.items()})
    variants["all together"] = (text_model(**ALL_MODEL), lambda: all_callbacks(e))
    variants["recommended set"] = (text_model(**RECOMMENDED_MODEL), lambda: recommended_callbacks(args.mr_epochs))
    plans["MR"] = (mr_data, e, variants)
    e = args.ucr_epochs
    variants = {"vanilla": (sequence_model, lambda: [])}
    variants.update({name: (sequence_model, factory) for name, factory in callback_tricks(e).items()})
    variants["all together"] = (sequence_model, lambda: all_callbacks(args.ucr_epochs))
    variants["recommended set"] = (sequence_model, lambda: recommended_callbacks(args.ucr_epochs))
    plans["ItalyPowerDemand"] = (ucr_data, e, variants)

    raw: dict[str, dict[str, list[dict]]] = {name: {v: [] for v in plan[2]} for name, plan in plans.items()}
    for seed in range(args.seeds):
        for dataset, (data, epochs, variants) in plans.items():
            for variant, (make_model, make_callbacks) in variants.items():  # interleaved: every variant per seed
                result = run_one(data, make_model, make_callbacks(), epochs, seed)
                raw[dataset][variant].append(result)
                print(f"seed {seed} {dataset} {variant}: best {max(result['curve']):.3f} final {result['final']:.3f} "
                      f"({result['seconds']:.0f} s)", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stability.json").write_text(json.dumps({"args": vars(args), "targets": TARGETS, "runs": raw}, indent=1),
                                            encoding="utf-8")
    lines = [
        "# RNN training-stability tricks: each alone vs vanilla vs all together",
        "",
        "Reproduce: `nice -n 10 .venv-bench/bin/python benchmarks/stability.py "
        f"--seeds {args.seeds} --mr-epochs {args.mr_epochs} --ucr-epochs {args.ucr_epochs}`",
        "",
        f"One thread, CPU, {args.seeds} seeds, variants interleaved per seed, same epoch budget for every variant.",
        "*final*: validation accuracy of the model as `fit` returns it; *best*: the best epoch's; *epochs to "
        "target*: first epoch at or above the target (mean over the seeds that reached it; `k/n` seeds reached it).",
        "",
    ]
    for dataset, (data, epochs, _) in plans.items():
        target = TARGETS[dataset]
        lines += [f"## {dataset}", "", f"{data.description}; {epochs} epochs; target accuracy {target}.", "",
                  "| variant | final val acc (mean ± std) | best val acc (mean ± std) | epochs to target | s / run (median) |",
                  "|---|---|---|---|---|"]
        for variant, runs in raw[dataset].items():
            finals = [r["final"] for r in runs]
            bests = [max(r["curve"]) for r in runs]
            reached = [epochs_to(r["curve"], target) for r in runs]
            hit = [x for x in reached if x is not None]
            to_target = f"{statistics.mean(hit):.1f} ({len(hit)}/{len(runs)})" if hit else f"> {epochs} (0/{len(runs)})"
            lines.append(
                f"| {variant} | {statistics.mean(finals):.3f} ± {statistics.pstdev(finals):.3f} | "
                f"{statistics.mean(bests):.3f} ± {statistics.pstdev(bests):.3f} | {to_target} | "
                f"{statistics.median(r['seconds'] for r in runs):.0f} |"
            )
        lines.append("")
    (RESULTS / "stability.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))

    plot(raw)


def plot(raw: dict[str, dict[str, list[dict]]]) -> None:
    """Mean validation accuracy per epoch, one panel per data set (from the runs, or stability.json)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from plots import curves, target_line

    fig, axes = plt.subplots(1, len(raw), figsize=(12, 4.6))
    styles = {"vanilla": {"color": "black", "linewidth": 2, "linestyle": "--"},
              "all together": {"color": "black", "linewidth": 2},
              "recommended set": {"color": "tab:red", "linewidth": 2}}
    for ax, (dataset, variants) in zip(axes, raw.items()):
        series = {}
        for variant, runs in variants.items():
            length = min(len(r["curve"]) for r in runs)
            series[variant] = (range(1, length + 1), [statistics.mean(r["curve"][i] for r in runs) for i in range(length)])
        curves(ax, series, styles)
        target_line(ax, TARGETS[dataset], "target of the epochs-to-target column")
        ax.set_title(f"{dataset}: mean validation accuracy")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(RESULTS / "stability.png", dpi=120)


if __name__ == "__main__":
    main()
