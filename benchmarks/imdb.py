"""IMDB through the generated project: default vs vanilla vs TF-IDF + logistic regression, and throughput vs length.

    .venv/bin/python benchmarks/imdb.py [--seeds 2] [--epochs 4] [--part all|accuracy|throughput]

accuracy: the 25,000 bundled IMDB reviews on the data module's one stratified seeded split
(15,750 train / 1,750 val / 7,500 test). TF-IDF (words and word pairs) + logistic regression,
its C chosen on the validation split, is fitted on the same split in the same run; then, per
seed, interleaved: the default config, the default with the T44 front-end (``--model.downsample
4``) and the vanilla preset, each through the real CLI (one thread, W&B offline) for at most
``--epochs`` epochs, test accuracy of the best-validation checkpoint read back from the W&B run.
Times per epoch (training steps only) come from ``epoch_clock.EpochClock``, the time from the
command to the first training step (start-up, word vectors, LR sweep) from ``first_step.FirstStepClock``.

throughput: synthetic documents (IMDB words, log-normal lengths around a mean of 50, 500 and
5,000 tokens, 256 per set), one training epoch each of the project's model and data module
with whole documents without and with bucketing, with the length policy (``max_length: auto``)
and with the policy and ``downsample: 4``. Documents per second count every document's whole
length, cut or not.

Writes benchmarks/results/imdb.json, imdb.md and imdb.png (``--name``). ``--configs`` picks other rows, e.g.
``--part accuracy --configs "default, pooling max" "default, pooling last" --name imdb_pooling``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter
from project_runs import PACKAGE, ROOT, fit

RESULTS = ROOT / "benchmarks" / "results"
HERE = Path(__file__).resolve().parent
CONFIGS = {
    "default": [],
    "default + downsample 4 (T44)": ["--model.downsample", "4"],
    "vanilla": ["--config", "configs/presets/vanilla.yaml"],
    "default, pooling last": ["--model.pooling", "last"],
    "default, pooling max": ["--model.pooling", "max"],
}
SHOWN = ("default", "default + downsample 4 (T44)", "vanilla")  # run by default; --configs picks others


def imdb_split() -> dict[str, tuple[list[str], list[str]]]:
    """The train/val/test texts and labels of the bundled IMDB set, split as the project's data module splits it."""
    from datamodules import TextClassificationDataModule

    data = TextClassificationDataModule(dataset="imdb")
    return {name: ([e.text for e in part], [e.label for e in part]) for name, part in data._load_splits().items()}


def length_policy_line() -> str:
    """What ``max_length: auto`` says for the bundled IMDB reviews."""
    from datamodules import TextClassificationDataModule

    data = TextClassificationDataModule(dataset="imdb")
    data.setup("fit")
    return data.length_reason


def tfidf_baseline(split: dict[str, tuple[list[str], list[str]]]) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train = vectorizer.fit_transform(split["train"][0])
    val, test = vectorizer.transform(split["val"][0]), vectorizer.transform(split["test"][0])
    best = None
    for c in (1.0, 4.0, 16.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(train, split["train"][1])
        score = model.score(val, split["val"][1])
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None
    return {"val_acc": best[0], "C": best[1], "test_acc": best[2].score(test, split["test"][1]),
            "seconds": time.perf_counter() - start}


def accuracy(project: Path, seeds: int, epochs: int, names: tuple[str, ...]) -> list[dict]:
    rows = []
    env = {"PYTHONPATH": f"{project / 'src'}:{HERE}"}
    for seed in range(seeds):
        for name in names:
            extra = CONFIGS[name]
            with tempfile.TemporaryDirectory() as tmp:
                clock, first = Path(tmp) / "epochs.jsonl", Path(tmp) / "first_step"
                args = [*extra, "--data.dataset", "imdb", "--trainer.callbacks+=epoch_clock.EpochClock",
                        "--trainer.callbacks+=first_step.FirstStepClock"]
                start = time.time()
                run, elapsed = fit(project, args, seed, epochs,
                                   {**env, "EPOCH_CLOCK_FILE": str(clock), "FIRST_STEP_FILE": str(first)})
                epoch_seconds = [json.loads(line)["seconds"] for line in clock.read_text().splitlines()]
                rows.append({
                    "config": name, "seed": seed, "test_acc": run.metric("test/acc")[-1],
                    "best_val_acc": max(run.metric("val/acc")), "epochs": len(run.metric("val/acc")),
                    "epoch_seconds": statistics.median(epoch_seconds),
                    "first_step_seconds": float(first.read_text()) - start, "wall_seconds": elapsed,
                    "lr": run.summary.get("lr_finder/applied_lr"),
                })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def synthetic(path: Path, mean: int, count: int, words: list[str], seed: int = 0) -> None:
    rng = random.Random(seed)
    sigma = 0.75  # log-normal: a long tail, as real corpora have
    mu = __import__("math").log(mean) - sigma ** 2 / 2
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(count):
            length = max(5, int(rng.lognormvariate(mu, sigma)))
            writer.writerow([" ".join(rng.choices(words, k=length)), str(i % 2)])


def throughput(project: Path, lengths: tuple[int, ...] = (50, 500, 5000), count: int = 256) -> list[dict]:
    import torch
    from lightning.pytorch import Trainer, seed_everything

    torch.set_num_threads(1)
    sys.path.insert(0, str(project / "src"))
    import importlib

    data_class = importlib.import_module(f"{PACKAGE}.datamodules").TextClassificationDataModule
    model_class = importlib.import_module(f"{PACKAGE}.models.text_classification").TextClassifier
    from datamodules.text_io import read_bundled, tokenize

    words = sorted({w for e in read_bundled("imdb")[:2000] for w in tokenize(e.text) if w.isalpha()})
    variants = {
        "whole documents, no bucketing (plain Lightning)": ({"max_length": None, "bucketing": False}, 1),
        "whole documents, bucketing": ({"max_length": None, "bucketing": True}, 1),
        "length policy (max_length: auto), bucketing": ({"max_length": "auto", "bucketing": True}, 1),
        "length policy + downsample 4 (T44)": ({"max_length": "auto", "bucketing": True}, 4),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mean in lengths:
            path = Path(tmp) / f"docs{mean}.csv"
            synthetic(path, mean, count, words)
            for name, (data_args, stride) in variants.items():
                seed_everything(0, verbose=False)
                data = data_class(
                    data_path=str(path), val_fraction=0.01, test_fraction=0.01, **data_args)
                data.setup("fit")
                whole = sum(len(tokenize(t)) for t in data.texts["train"])
                kept = sum(len(s) for s in data.datasets["train"].sequences)
                model = model_class(data.vocab_size, data.num_classes, downsample=stride)
                trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                  enable_model_summary=False, limit_val_batches=0, gradient_clip_val=5.0)
                start = time.perf_counter()
                trainer.fit(model, datamodule=data)
                seconds = time.perf_counter() - start
                docs = len(data.datasets["train"])
                rows.append({"mean_length": mean, "variant": name, "seconds": seconds, "docs_per_s": docs / seconds,
                             "tokens_kept": kept / whole, "cut": data.max_length})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def render(results: dict) -> str:
    lines = []
    if "tfidf" in results:
        t = results["tfidf"]
        lines += [
            f"IMDB, 25,000 reviews (bundled), one stratified split: 15,750 train / 1,750 val / 7,500 test; "
            f"{results['seeds']} seeds, at most {results['epochs']} epochs, one thread per run.",
            "",
            "| model | test acc (mean ± std) | best val acc | epoch, training steps (median) | tokens / s | "
            "command to first training step (median) |",
            "|---|---|---|---|---|---|",
            f"| TF-IDF (1-2 grams) + logistic regression, C={t['C']:g} chosen on val | {t['test_acc']:.3f} | "
            f"{t['val_acc']:.3f} | fit {t['seconds']:.0f} s | | |",
        ]
        policy = results.get("length_policy")
        tokens = results["train_tokens"]
        for name in dict.fromkeys(r["config"] for r in results["accuracy"]):
            rows = [r for r in results["accuracy"] if r["config"] == name]
            if not rows:
                continue
            test = [r["test_acc"] for r in rows]
            epoch = statistics.median(r["epoch_seconds"] for r in rows)
            lines.append(
                f"| {name} | {statistics.mean(test):.3f} ± {statistics.pstdev(test):.3f} | "
                f"{statistics.mean(r['best_val_acc'] for r in rows):.3f} | {epoch:.0f} s | {tokens / epoch:,.0f} | "
                f"{statistics.median(r['first_step_seconds'] for r in rows):.0f} s |")
        lines.append("")
        if policy:
            lines += [f"The length policy on these reviews: {policy}.", ""]
    if results.get("throughput"):
        lines += ["Training throughput vs document length (synthetic documents of IMDB words, 256 per length, "
                  "one epoch, one thread; documents/s count whole documents):", "",
                  "| mean length | variant | epoch s | documents / s | tokens kept |", "|---|---|---|---|---|"]
        for r in results["throughput"]:
            lines.append(f"| {r['mean_length']:,} | {r['variant']} | {r['seconds']:.1f} | {r['docs_per_s']:.1f} | "
                         f"{r['tokens_kept']:.0%} |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.get("throughput") or []
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        points = [(r["mean_length"], r["docs_per_s"]) for r in rows if r["variant"] == variant]
        ax.plot(*zip(*points), marker="o", label=variant)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean document length (tokens)")
    ax.set_ylabel("training documents / s (1 thread)")
    ax.set_title("LSTM 128 training throughput vs document length")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--part", choices=("all", "accuracy", "throughput"), default="all")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(SHOWN))
    parser.add_argument("--name", default="imdb", help="results file stem: <name>.json, <name>.md, <name>.png")
    parser.add_argument("--render", action="store_true", help="only rewrite <name>.md/png from <name>.json")
    args = parser.parse_args()
    out = RESULTS / f"{args.name}.json"
    if args.render:
        results = json.loads(out.read_text())
        if "length_policy" not in results:
            results["length_policy"] = length_policy_line()
            out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    else:
        results = json.loads(out.read_text()) if out.exists() else {}
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=tmp))
            if args.part in ("all", "throughput"):
                results["throughput"] = throughput(project)
            if args.part in ("all", "accuracy"):
                split = imdb_split()
                results["tfidf"] = tfidf_baseline(split)
                print(json.dumps(results["tfidf"]), flush=True)
                from datamodules import TextClassificationDataModule

                data = TextClassificationDataModule(dataset="imdb")
                data.setup("fit")
                results["train_tokens"] = sum(len(s) for s in data.datasets["train"].sequences)
                results["length_policy"] = data.length_reason
                results.update(seeds=args.seeds, epochs=args.epochs)
                results["accuracy"] = accuracy(project, args.seeds, args.epochs, tuple(args.configs))
        RESULTS.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    (RESULTS / f"{args.name}.md").write_text(render(results), encoding="utf-8")
    plot(results, RESULTS / f"{args.name}.png")
    print(render(results))


if __name__ == "__main__":
    main()
