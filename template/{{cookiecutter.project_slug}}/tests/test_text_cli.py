# task: text_classification
"""The command line on texts: predict from a checkpoint, resume with its vocabulary, one's own corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml


def test_predict_from_checkpoint_alone(workspace, tmp_path, monkeypatch):
    workspace.fit(epochs=1)
    _, run_dir = workspace.only_run()
    best, _ = workspace.checkpoints(run_dir)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    workspace.main(
        "predict",
        "--ckpt_path", best,
        "--data.predict_texts", '["a gripping film", "dull and lifeless"]',
        "--data.data_path", "does_not_exist.csv",  # never read: the vocabulary comes from the checkpoint
    )

    (path,) = sorted(elsewhere.rglob("predictions.jsonl"))
    assert path.parent.parent == elsewhere / "runs" / workspace.project  # a run folder, even without --config
    assert not (elsewhere / "lightning_logs").exists()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in rows] == ["a gripping film", "dull and lifeless"]
    for row in rows:
        assert row["label"] in {"negative", "positive"}
        assert set(row["probabilities"]) == {"negative", "positive"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert row["probability"] == max(row["probabilities"].values())


def test_resume_continues_the_same_run_at_the_next_epoch_with_checkpoint_vocabulary(workspace):
    from {{ cookiecutter.package_name }}.callbacks import read_offline_run
    from {{ cookiecutter.package_name }}.datamodules import TextClassificationDataModule

    workspace.fit(epochs=1)
    run_id, run_dir = workspace.only_run()
    _, last = workspace.checkpoints(run_dir)
    first_ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert first_ckpt["epoch"] == 0
    vocab = first_ckpt["TextClassificationDataModule"]["vocab"]

    # another slice of the data: a vocabulary rebuilt from it would not fit the checkpoint's embedding
    other_limit = 400
    assert TextClassificationDataModule(limit=other_limit).vocab_size != len(vocab)
    workspace.fit("--ckpt_path", last, "--data.limit", other_limit, epochs=2)  # a finished run goes on (`last` skips it)

    assert workspace.only_run() == (run_id, run_dir), "the resumed run writes into the same run folder"
    resumed_config = yaml.safe_load((run_dir / "config.resumed-1.yaml").read_text(encoding="utf-8"))
    assert resumed_config["data"]["vocab_from"] is None  # rebuilt from the checkpoint's data module state instead
    resumed_ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert resumed_ckpt["epoch"] == 1
    assert resumed_ckpt["global_step"] > first_ckpt["global_step"]
    assert resumed_ckpt["TextClassificationDataModule"]["vocab"] == vocab
    assert resumed_ckpt["state_dict"]["embedding.weight"].shape[0] == len(vocab)

    segments = sorted((workspace.root / "runs" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(segments) == 2, "offline: a second folder of the same run id, which wandb sync adds to the run"
    first, resumed = (read_offline_run(path) for path in segments)
    assert first.run_id == resumed.run_id == run_id and resumed.exit_code == 0
    epochs = [row["epoch"] for row in resumed.history if "epoch" in row and "test/acc" not in row]  # not test_after_fit's
    assert epochs and set(epochs) == {1}, f"the resumed run should train epoch 1 only, logged epochs {epochs}"
    assert len(resumed.metric("val/acc")) == 1


def test_own_data_trains_word_vectors_on_its_own_text_only(workspace, caplog):
    """``data.unlabelled: auto`` adds no movie reviews to a user's own data, and says so."""
    topics = {"weather": ["rain", "sunny", "storm", "cloudy", "wind", "snow"],
              "sport": ["goal", "match", "team", "score", "league", "coach"]}
    rows = ["text,label"]
    for i in range(200):
        label = "weather" if i % 2 else "sport"
        words = topics[label]
        rows.append(f"today the {words[i % 6]} and the {words[(i // 6) % 6]} were {['great', 'bad'][i % 3 == 0]},{label}")
    Path("own.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    workspace.main("fit", "--config", workspace.default_config, "--data.data_path", "own.csv",
                   "--trainer.max_epochs", "2")
    _, run_dir = workspace.only_run()
    report = json.loads((run_dir / "word2vec.json").read_text())
    assert report["corpus"] == "the training split (126 texts)"  # no IMDB reviews
    assert report["unlabelled_reason"].startswith("unlabelled: auto -> none for your own data")
    assert "reading the unlabelled corpus" not in caplog.text
    assert "on the training split (126 texts) [unlabelled: auto -> none for your own data" in caplog.text  # says why


def real_corpus(path: Path) -> Path:
    """Length-skewed imbalanced messages: short hams, long spams (some of them documents), 87/13, a few dirty rows."""
    import csv
    import random

    from {{ cookiecutter.package_name }}.datamodules import read_bundled, tokenize

    sentences = [e.text for e in read_bundled("mr")]
    random.Random(0).shuffle(sentences)
    short = [s for s in sentences if len(tokenize(s)) <= 12][:348]
    long = [s for s in sentences if len(tokenize(s)) >= 30][:52]
    rows = [(s, "ham") for s in short] + [(" ".join([s] * (1 + 40 * (i % 13 == 0))), "spam") for i, s in enumerate(long)]
    random.Random(1).shuffle(rows)
    rows[3] = ("", rows[3][1])
    rows[9] = ("  ", rows[9][1])
    rows[20] = (rows[20][0], "spma")  # a typo: a label seen once
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_a_real_corpus_is_checked_all_at_once_then_trains_with_its_policies_said(workspace, capsys):
    """Items of the real-corpora list through the CLI: dirty rows, a rare label, long texts, class mix, a tiny
    validation split, the LR finder's line."""
    path = real_corpus(workspace.root / "messages.csv")
    code, printed = workspace.error("fit", "--config", workspace.default_config, "--data.data_path", path)
    assert code == 2
    assert printed == (f"error: {path}: 2 rows with an empty value: 'text' empty at lines 5, 11. Fill them in, remove "
                       "them, or set --data.empty_rows drop to leave them out.\n")
    code, printed = workspace.error("fit", "--config", workspace.default_config, "--data.data_path", path,
                                    "--data.empty_rows", "drop")
    dropped, error = printed.splitlines()
    assert code == 2 and error.startswith(f"error: {path}: 1 label seen fewer than 3 times: 'spma' (line 22).")
    assert dropped == f"warning: {path}: left out 2 rows with an empty value (data.empty_rows: drop): 'text' empty at lines 5, 11."
    capsys.readouterr()
    workspace.main("fit", "--config", workspace.default_config, "--data.data_path", path, "--data.empty_rows", "drop",
                   "--data.rare_labels", "drop", "--trainer.max_epochs", "2")
    lines = [line.removeprefix("warning: ") for line in capsys.readouterr().err.splitlines()]  # the notices, one a line
    assert f"{path}: left out 2 rows with an empty value (data.empty_rows: drop): 'text' empty at lines 5, 11." in lines
    (policy,) = [m for m in lines if m.startswith("max_length: auto -> ")]
    assert policy.startswith("max_length: auto -> 256 tokens (the 95th percentile of the training texts, at least 256)")
    (small,) = [m for m in lines if m.startswith("EarlyStopping: the validation split is small")]
    assert "28 validation examples (< 400)" in small and "class 'spam' has 4 validation examples (< 50)" in small
    assert [m for m in lines if re.match(r"LRFinder: (lr \S+ applied|kept lr)", m)]
    run_id, run_dir = workspace.only_run()
    checks = {c["check"]: c for c in json.loads((run_dir / "sanity_checks.json").read_text())}
    assert checks["label_mix"]["status"] == "ok"  # bucketed batches keep the 87/13 mix
    summary = workspace.offline_run(run_id).summary
    assert summary["sanity/label_mix"]["status"] == "ok"


def test_wrong_columns_are_named(workspace):
    Path("reviews.csv").write_text("review,sentiment\ngood film,pos\nbad film,neg\n", encoding="utf-8")
    code, printed = workspace.error("fit", "--config", workspace.default_config, "--data.data_path", "reviews.csv")
    assert code == 2 and re.search(r"^error: .*no column 'text'.*review, sentiment", printed), printed
