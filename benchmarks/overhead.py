"""Per-step cost of the tricks: the vanilla preset vs the default config vs default + diagnostics.

    .venv-bench/bin/python benchmarks/overhead.py [--seeds 3] [--epochs 2]
    .venv-bench/bin/python benchmarks/overhead.py --inprocess cpu [--seeds 3]   # see inprocess_benchmark
    python benchmarks/overhead.py --inprocess gpu [--seeds 3]                   # on a CUDA machine

Bakes the template with default answers and reads that project's ``configs/default.yaml``, so a
re-run measures whatever the default config holds then. Variants, trained through the real CLI
with offline W&B runs, one thread, interleaved (A B C, B C A, C A B, ... per seed):

- ``vanilla``: ``configs/presets/vanilla.yaml`` (plain Lightning: no tricks);
- ``default``: ``configs/default.yaml`` as it is;
- ``default + diagnostics``: the default plus each of SanityChecks, LossDiagnosis, NaNGuard and
  Introspection that it does not list yet (``--trainer.callbacks+=...``); dropped when it lists all.

Each on MR with the default LSTM (hidden 128) and with hidden 512 (10x the recurrent layer's
parameters). A timing callback records the start of every training batch: the steady-state
step time is the median interval between consecutive batch starts (callbacks, logging and data
loading included; the first 5 steps of the fit and validation left out). One-shot work is
reported apart: the fit-start time (setup to the first batch: LR finder, initialisation) and the
first 5 steps (SanityChecks inspects the first batches there). The per-step hooks of the
diagnostics are also timed inside each run, as a share of its steady-state step time. Writes
benchmarks/results/overhead.md, overhead.json and overhead.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback

from project_runs import PACKAGE, ROOT, run_cli

RESULTS = ROOT / "benchmarks" / "results"
WARMUP = 5  # steps at the start of the fit that are not steady state
DIAGNOSTICS = {"SanityChecks": "sanity", "LossDiagnosis": "loss_diagnosis", "NaNGuard": "nan_guard",
               "Introspection": "introspection"}
MODELS = {
    "LSTM 128 (default)": [],
    "LSTM 512 (10x recurrent parameters)": ["--model.hidden_size", "512", "--trainer.limit_train_batches", "40"],
}


STEP_HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
              "on_train_batch_end")


class StepTimer(Callback):
    """Write batch start times, the fit-start time and the diagnostics' hook time to ``$OVERHEAD_TIMES``.

    The per-step hooks of the diagnostics callbacks are wrapped with a timer, so their own cost is
    measured inside each run, as a share of that run's steps: a figure that a busy neighbour on the
    machine slows down in proportion, unlike the comparison of step times across runs.
    """

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.setup_time = time.perf_counter()
        self.starts: list[list[float]] = []
        self.batches = 0
        self.hook_s = 0.0
        for callback in trainer.callbacks:
            if type(callback).__name__ in DIAGNOSTICS:
                for name in STEP_HOOKS:
                    setattr(callback, name, self._timed(getattr(callback, name)))

    def _timed(self, hook: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                if self.batches > WARMUP:
                    self.hook_s += time.perf_counter() - start

        return timed

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.train_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.starts.append([])

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.starts[-1].append(time.perf_counter())
        self.batches += 1

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        data = {"fit_start_s": self.train_start - self.setup_time, "starts": self.starts, "hook_s": self.hook_s,
                "steady_batches": max(0, self.batches - WARMUP)}
        Path(os.environ["OVERHEAD_TIMES"]).write_text(json.dumps(data), encoding="utf-8")


def variants(project: Path) -> dict[str, list[str]]:
    text = (project / "configs" / "default.yaml").read_text(encoding="utf-8")
    missing = [name for name in DIAGNOSTICS if f".{name}" not in text]
    result = {"vanilla": ["--config", "configs/presets/vanilla.yaml"], "default": []}
    if missing:
        result["default + diagnostics"] = [
            f"--trainer.callbacks+={PACKAGE}.callbacks.{DIAGNOSTICS[name]}.{name}" for name in missing
        ]
    return result


def run(project: Path, extra: list[str], seed: int, epochs: int, times: Path) -> dict[str, Any]:
    env = {"PYTHONPATH": f"{project / 'src'}{os.pathsep}{ROOT / 'benchmarks'}", "OVERHEAD_TIMES": str(times)}
    wall = run_cli(project, [*extra, "--trainer.callbacks+=overhead.StepTimer"], seed, epochs, env)
    data = json.loads(times.read_text(encoding="utf-8"))
    intervals = [b - a for epoch in data["starts"] for a, b in zip(epoch, epoch[1:])]
    first_epoch = data["starts"][0]
    steady_ms = 1000 * sum(intervals[WARMUP:])  # the same steps as the hook time (validation left out)
    hook_ms = 1000 * data["hook_s"]
    return {
        "step_ms": 1000 * statistics.median(intervals[WARMUP:]),
        "hook_ms_per_step": hook_ms / max(1, data["steady_batches"]),
        "hook_share": hook_ms / steady_ms if steady_ms else 0.0,
        "fit_start_s": data["fit_start_s"],
        "first_steps_s": first_epoch[min(WARMUP, len(first_epoch) - 1)] - first_epoch[0],
        "wall_s": wall,
        "steps": sum(len(epoch) for epoch in data["starts"]),
    }


def inprocess_benchmark(reps: int, accelerator: str) -> None:
    """In one process: a plain Trainer with and without the diagnostics, on synthetic token batches.

    On a GPU (where the CLI may not run: no W&B, no bundled data) this isolates what matters there:
    the device-to-host synchronisations, which stall the queue on a GPU and cost next to nothing on
    a CPU. On a CPU (one thread) the variants alternate fit by fit in one process, which a busy
    neighbour disturbs less than separate CLI runs. Writes overhead.<accelerator>.md and .json.
    """
    import torch
    from lightning.pytorch import LightningModule, Trainer
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    sys.path.insert(0, str(ROOT))
    from callbacks.introspection import Introspection
    from callbacks.loss_diagnosis import LossDiagnosis
    from callbacks.nan_guard import NaNGuard
    from callbacks.sanity import SanityChecks

    class Model(LightningModule):
        def __init__(self, hidden: int) -> None:
            super().__init__()
            self.save_hyperparameters({"num_classes": 2})
            self.embedding, self.rnn = nn.Embedding(20000, 128), nn.LSTM(128, hidden, batch_first=True)
            self.head = nn.Linear(hidden, 2)

        def loss(self, batch: Any) -> Any:
            return nn.functional.cross_entropy(self.head(self.rnn(self.embedding(batch[0]))[1][0][-1]), batch[1])

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = self.loss(batch)
            self.log("train/loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("val/loss", self.loss(batch))

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    gpu = accelerator == "gpu"
    if not gpu:
        torch.set_num_threads(1)
    sync = torch.cuda.synchronize if gpu else (lambda: None)

    class Timer(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            if trainer.global_step == 30:
                sync()
                self.start = time.perf_counter()

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            sync()
            self.ms = 1000 * (time.perf_counter() - self.start) / (trainer.global_step - 30)

    generator = torch.Generator().manual_seed(0)
    tokens, labels = torch.randint(1, 20000, (6400, 40), generator=generator), torch.randint(0, 2, (6400,))
    train = DataLoader(TensorDataset(tokens, labels), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(tokens[:640], labels[:640]), batch_size=64)
    compared = {
        "plain Trainer": lambda: [],
        "+ diagnostics (defaults)": lambda: [SanityChecks(), LossDiagnosis(), NaNGuard(), Introspection()],
        "+ diagnostics, NaNGuard every 10 steps": lambda: [SanityChecks(), LossDiagnosis(), NaNGuard(10),
                                                          Introspection()],
    }
    results: dict[str, dict[str, list[float]]] = {}
    steps = 530 if gpu else 230
    for hidden in (128, 1280) if gpu else (128,):
        model = f"LSTM {hidden}"
        results[model] = {name: [] for name in compared}
        for rep in range(reps):
            names = list(compared)
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                timer = Timer()
                trainer = Trainer(accelerator=accelerator, devices=1, max_steps=steps, val_check_interval=100,
                                  logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                  enable_model_summary=False,
                                  callbacks=[*compared[name](), timer], default_root_dir=tempfile.mkdtemp())
                trainer.fit(Model(hidden), train, val)
                results[model][name].append(timer.ms)
    device = torch.cuda.get_device_name() if gpu else "CPU, one thread"
    command = f"python benchmarks/overhead.py --inprocess {accelerator} --seeds {reps}"
    lines = [
        f"# Per-step overhead of the diagnostics, in one process ({accelerator})", "", f"Reproduce: `{command}`", "",
        f"{device}; synthetic batches (64 × 40 token ids, 20k vocabulary, 2 classes), embedding 128 → LSTM → "
        f"linear, Adam; {steps - 30} timed steps after 30, validation every 100; {reps} repetitions, variants "
        "interleaved; median ms/step, ratio to the plain Trainer.", "",
        "| model | variant | ms/step (median) | × plain |", "|---|---|---|---|",
    ]
    for model, by_variant in results.items():
        base = statistics.median(by_variant["plain Trainer"])
        for name, values in by_variant.items():
            median = statistics.median(values)
            lines.append(f"| {model} | {name} | {median:.3f} | {median / base:.3f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"overhead.{accelerator}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw = {"command": command, "device": device, "results": results}
    (RESULTS / f"overhead.{accelerator}.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    print("\n".join(lines))


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--inprocess", choices=("cpu", "gpu"), help="the in-process benchmark instead")
    args = parser.parse_args()
    if args.inprocess:
        inprocess_benchmark(args.seeds, args.inprocess)
        return
    from cookiecutter.main import cookiecutter

    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=tmp))
        names = variants(project)
        for model, model_args in MODELS.items():
            results[model] = {name: [] for name in names}
            for seed in range(args.seeds):
                order = list(names)[seed % len(names):] + list(names)[: seed % len(names)]  # rotate: no fixed slot
                for name in order:
                    measured = run(project, names[name] + model_args, seed, args.epochs, Path(tmp) / "times.json")
                    results[model][name].append(measured)
                    print(f"{model} | seed {seed} | {name}: {measured['step_ms']:.2f} ms/step, diagnostics' hooks "
                          f"{measured['hook_ms_per_step']:.2f} ms/step ({measured['hook_share']:.1%}), fit start "
                          f"{measured['fit_start_s']:.2f} s", flush=True)
        listed = [name for name in DIAGNOSTICS if f".{name}" in (project / "configs" / "default.yaml").read_text()]

    command = f".venv-bench/bin/python benchmarks/overhead.py --seeds {args.seeds} --epochs {args.epochs}"
    lines = [
        "# Per-step overhead of the tricks",
        "",
        f"Reproduce: `{command}`",
        "",
        f"MR, {args.epochs} epochs, {args.seeds} seeds, one CPU thread, W&B offline, variants interleaved. "
        f"Steady-state step: median interval between batch starts (first {WARMUP} steps of the fit left out), "
        "mean ± std over seeds; ratios of the means. One-shot work apart: fit start (setup to first batch: LR finder, "
        f"initialisation) and the first {WARMUP} steps (SanityChecks inspects the first batches). The diagnostics' "
        "hooks column times their per-step hooks inside each run (steady steps only; Introspection's forward hooks "
        "on its measured steps excepted): the overhead figure least disturbed by other load on the machine.",
        "",
        "default.yaml lists " + (", ".join(listed) if listed else "none of the diagnostics") + "; "
        + ("`default + diagnostics` adds the others with `--trainer.callbacks+=`." if len(listed) < len(DIAGNOSTICS)
           else "so `default` includes all of them."),
        "",
        "| model | variant | step ms | × vanilla | × default | diagnostics' hooks ms/step (share of step) "
        "| fit start s | first 5 steps s | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, by_variant in results.items():
        base = {k: statistics.mean(r["step_ms"] for r in by_variant[k]) for k in ("vanilla", "default")}
        for name, runs in by_variant.items():
            step = statistics.mean(r["step_ms"] for r in runs)
            hooks = statistics.mean(r["hook_ms_per_step"] for r in runs)
            share = statistics.mean(r["hook_share"] for r in runs)
            hook_text = f"{hooks:.2f} ({share:.1%})" if hooks else "–"
            lines.append(
                f"| {model} | {name} | {mean_std([r['step_ms'] for r in runs])} | {step / base['vanilla']:.3f} | "
                f"{step / base['default']:.3f} | {hook_text} | {mean_std([r['fit_start_s'] for r in runs])} | "
                f"{mean_std([r['first_steps_s'] for r in runs])} | {statistics.median(r['wall_s'] for r in runs):.1f} |"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "overhead.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (RESULTS / "overhead.json").write_text(json.dumps({"command": command, "results": results}, indent=1),
                                           encoding="utf-8")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.4))
    for ax, (model, by_variant) in zip(axes, results.items()):
        names = list(by_variant)
        means = [statistics.mean(r["step_ms"] for r in by_variant[n]) for n in names]
        stds = [statistics.pstdev([r["step_ms"] for r in by_variant[n]]) for n in names]
        ax.bar(range(len(names)), means, yerr=stds, color=["tab:gray", "tab:blue", "tab:green"][: len(names)])
        ax.set_xticks(range(len(names)), [n.replace(" + ", "\n+ ") for n in names], fontsize=8)
        ax.set_ylabel("steady-state ms / step")
        ax.set_title(f"MR, {model}", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "overhead.png", dpi=120)


if __name__ == "__main__":
    main()
