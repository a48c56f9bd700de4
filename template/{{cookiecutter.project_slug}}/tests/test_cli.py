"""End-to-end checks of the command line: fit, resume, predict, presets and errors.

Runs go through the real ``ProjectCLI`` and the real W&B logger, offline because the
``isolated_wandb`` fixture removes every credential; what W&B recorded is read back from
the offline run on disk.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import {{ cookiecutter.package_name }}

HISTORY_KEYS = (
    "train/loss_step",
    "train/loss_epoch",
    "train/acc",
    "val/loss",
    "val/acc",
    "val/f1",
    "lr-Adam",
    "grad/norm",
    "grad/clip_rate",
)


def only(mapping: dict) -> tuple:
    assert len(mapping) == 1, f"expected exactly one entry, got {sorted(mapping)}"
    return next(iter(mapping.items()))


def checkpoints(run_dir: Path) -> tuple[Path, Path]:
    """(best, last) checkpoint of a run directory."""
    folder = run_dir / "checkpoints"
    best = sorted(folder.glob("best-*.ckpt"))
    assert len(best) == 1, f"expected one best checkpoint in {folder}, got {sorted(folder.iterdir())}"
    last = folder / "last.ckpt"
    assert last.is_file(), f"no last.ckpt in {folder}"
    return best[0], last


def subprocess_env() -> dict[str, str]:
    """The test's (W&B-isolated) environment, with this package importable in a child process."""
    env = dict(os.environ)
    source = str(Path({{ cookiecutter.package_name }}.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH", "")]))
    env.setdefault("OMP_NUM_THREADS", "1")  # as conftest does in-process: immune to a busy neighbour
    return env


def test_fit_writes_run_directory_and_offline_wandb_run(workspace, capfd, caplog):
    workspace.fit()

    run_id, run_dir = only(workspace.run_dirs())
    assert (run_dir / "config.yaml").is_file()
    best, last = checkpoints(run_dir)
    # last.ckpt: the final epoch whether or not it improved, with all a resume needs
    last_ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert last_ckpt["epoch"] == 1 and last_ckpt["optimizer_states"] and last_ckpt["callbacks"]
    # the best checkpoint: weights, vocabulary and labels only (what test and predict read), no second copy
    best_ckpt = torch.load(best, map_location="cpu", weights_only=True)
    assert "optimizer_states" not in best_ckpt and best_ckpt["TextClassificationDataModule"]["vocab"]
    assert not list(run_dir.glob("*.bin")), "the run folder keeps no copy of the word vectors"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["limit"] == workspace.limit
    assert saved["trainer"]["max_epochs"] == 2

    run = workspace.offline_run(run_id)
    assert run.exit_code == 0
    logged = {key for row in run.history for key in row}
    missing = [key for key in HISTORY_KEYS if key not in logged]
    assert not missing, f"not logged to W&B: {missing} (logged: {sorted(logged)})"
    accuracies = run.metric("val/acc")
    assert len(accuracies) == 2  # one per epoch
    assert all(0.0 <= acc <= 1.0 for acc in accuracies)

    # the whole resolved config, not only the model's hyperparameters
    assert run.config["model"]["hidden_size"] == 128
    assert run.config["data"]["limit"] == workspace.limit
    assert run.config["trainer"]["max_epochs"] == 2
    assert run.config["trainer"]["gradient_clip_val"] == 5.0

    assert "requirements.txt" in run.files
    assert 0.0 <= run.summary["grad/clip_rate_total"] <= 1.0

    # T01: the LR range test ran before training; its curve is in the run directory and in W&B
    assert (run_dir / "lr_finder.png").is_file()
    assert run.summary["lr_finder/steps"] > 0 and isinstance(run.summary["lr_finder/confident"], bool)
    applied = run.summary["lr_finder/applied_lr"]
    # a readable curve (clear, noisy, or flat then rising) is applied; one with nothing to read keeps model.lr
    unusable = any(word in run.summary["lr_finder/reason"] for word in ("too short", "before the end", "without rising", "no suggestion"))
    assert run.summary["lr_finder/applied"] is not unusable
    expected = run.summary["lr_finder/suggestion"] if run.summary["lr_finder/applied"] else saved["model"]["lr"]
    assert applied == pytest.approx(expected)
    assert run.metric("lr-Adam")[0] == pytest.approx(applied)

    # the summary holds the best epoch's metrics (the best checkpoint's), the last epoch's under final/
    best_epoch = max(range(len(accuracies)), key=accuracies.__getitem__)
    assert run.summary["val/acc"] == pytest.approx(accuracies[best_epoch])
    assert run.summary["best/epoch"] == best_epoch
    assert run.summary["final/val/acc"] == pytest.approx(accuracies[-1])
    assert json.loads((run_dir / "best_metrics.json").read_text())["best/epoch"] == best_epoch
    # test_after_fit: the best checkpoint on the test split, in W&B and on the screen
    assert 0.0 <= run.summary["test/acc"] <= 1.0 and len(run.metric("test/acc")) == 1

    captured = capfd.readouterr()
    out, err = captured.out, captured.err
    assert re.search(r"best val/acc: 0\.\d{4}   test/acc: 0\.\d{4}", out), out[-2000:]
    assert f"run folder:  runs/{workspace.project}/{run_id}" in out
    assert "next:" in out and "predict --ckpt_path" in out and "--data.data_path your.csv" in out
    assert "not logged in" in err
    assert "LRFinder: sweeping the LR from 1e-06 to 1 over at most 100 training steps" in caplog.text  # never silent
    synced = re.findall(r"wandb sync (\S+)", out + err)
    assert synced, f"no `wandb sync <dir>` command in the output:\n{out[-2000:]}"
    assert "wandb login, then wandb sync" in out
    assert Path(synced[-1]).is_dir()
    assert Path(synced[-1]).resolve() == workspace.wandb_dir(run_id).resolve()
    # a quiet screen: no Lightning tips, no FLOPs that were never counted, no Python warnings
    shown = out + err + "\n".join(record.getMessage() for record in caplog.records if not _silenced(record))
    for noise in ("💡", "Total FLOPs", "UserWarning", "No seed found", "tensorboardX", "Please add the following",
                  "Trainer already configured"):
        assert noise not in shown, noise


def _silenced(record) -> bool:
    from {{ cookiecutter.package_name }}.cli import _no_tips

    return not _no_tips(record)


def test_second_fit_in_same_folder_gets_its_own_run_directory(workspace):
    workspace.fit(epochs=1)
    first = workspace.run_dirs()
    workspace.fit(epochs=1)  # LightningCLI's default would fail: "config.yaml already exists"
    both = workspace.run_dirs()

    assert len(first) == 1 and len(both) == 2
    (second_id,) = set(both) - set(first)
    assert (both[second_id] / "config.yaml").is_file()
    checkpoints(both[second_id])
    assert workspace.offline_run(second_id).exit_code == 0


def test_predict_from_checkpoint_alone(workspace, tmp_path, monkeypatch):
    workspace.fit(epochs=1)
    _, run_dir = only(workspace.run_dirs())
    best, _ = checkpoints(run_dir)

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


def test_print_config_round_trip(workspace, capsys):
    with pytest.raises(SystemExit) as exit_info:
        workspace.main("fit", "--config", workspace.default_config, "--print_config")
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "model:" in printed and "trainer:" in printed
    Path("printed.yaml").write_text(printed, encoding="utf-8")

    with pytest.raises(SystemExit) as exit_info:
        workspace.main("fit", "--config", "printed.yaml", "--print_config")
    assert exit_info.value.code in (0, None)
    assert capsys.readouterr().out == printed


def test_resume_continues_the_same_run_at_the_next_epoch_with_checkpoint_vocabulary(workspace):
    from {{ cookiecutter.package_name }}.callbacks import read_offline_run
    from {{ cookiecutter.package_name }}.datamodules import TextClassificationDataModule

    workspace.fit(epochs=1)
    run_id, run_dir = only(workspace.run_dirs())
    _, last = checkpoints(run_dir)
    first_ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert first_ckpt["epoch"] == 0
    vocab = first_ckpt["TextClassificationDataModule"]["vocab"]

    # another slice of the data: a vocabulary rebuilt from it would not fit the checkpoint's embedding
    other_limit = 400
    assert TextClassificationDataModule(limit=other_limit).vocab_size != len(vocab)
    workspace.fit("--ckpt_path", last, epochs=2, limit=other_limit)  # a finished run goes on (`last` skips it)

    assert only(workspace.run_dirs()) == (run_id, run_dir), "the resumed run writes into the same run folder"
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


def test_resume_last_skips_finished_runs_and_starts_afresh_without_one(workspace, caplog):
    workspace.fit(epochs=1)
    finished_id, run_dir = only(workspace.run_dirs())
    assert (run_dir / "checkpoints" / "last.finished").is_file()
    workspace.fit("--ckpt_path", "last", epochs=1)
    assert "--ckpt_path last: no resumable checkpoint" in caplog.text, "a finished run is not resumed by 'last'"
    assert len(workspace.run_dirs()) == 2 and finished_id in workspace.run_dirs()


def test_a_missing_or_weights_only_checkpoint_is_refused_before_anything_is_created(workspace):
    code, printed = workspace.error("predict", "--ckpt_path", "nowhere.ckpt", "--data.predict_texts", '["fine"]')
    assert code == 2 and printed.startswith("error: --ckpt_path nowhere.ckpt: no such file.")
    assert sorted(path.name for path in workspace.root.iterdir()) == ["home"], "no lightning_logs/, no runs/"
    workspace.fit(epochs=1)
    _, run_dir = only(workspace.run_dirs())
    best, _ = checkpoints(run_dir)
    code, printed = workspace.error("fit", "--config", workspace.default_config, "--ckpt_path", best)
    assert code == 2 and "holds weights only" in printed and "--ckpt_path last" in printed


def test_one_monitor_switches_checkpointing_and_early_stopping_with_their_mode(workspace):
    """T57: ``--model.monitor val/loss`` alone moves every callback that watched val/acc, and flips its mode."""
    workspace.fit("--model.monitor", "val/loss", epochs=1)
    _, run_dir = only(workspace.run_dirs())
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    watching = {c["class_path"].rsplit(".", 1)[-1]: c["init_args"] for c in config["trainer"]["callbacks"]
                if (c.get("init_args") or {}).get("monitor")}
    assert set(watching) == {"ModelCheckpoint", "EarlyStopping"}, watching
    assert all(args["monitor"] == "val/loss" and args["mode"] == "min" for args in watching.values()), watching
    _, last = checkpoints(run_dir)
    states = torch.load(last, map_location="cpu", weights_only=True)["callbacks"]
    keys = [key for key in states if key.startswith(("ModelCheckpoint", "EarlyStopping")) and "val/" in key]
    assert len(keys) == 2 and all("'monitor': 'val/loss'" in key and "'mode': 'min'" in key for key in keys), keys


def test_debug_preset_runs(workspace):
    workspace.main("fit", "--config", workspace.default_config, "--config", workspace.presets / "debug.yaml")
    assert not workspace.run_dirs(), "fast_dev_run writes no run directory"
    assert not list(workspace.root.glob("runs/wandb/*run-*")), "fast_dev_run logs nothing to W&B"
    written = sorted(p.name for p in workspace.root.iterdir())
    assert written == ["home"], f"the debug preset wrote into the project folder: {written}"  # home/: the vector cache


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
    _, run_dir = only(workspace.run_dirs())
    report = json.loads((run_dir / "word2vec.json").read_text())
    assert report["corpus"] == "the training split (126 texts)"  # no IMDB reviews
    assert report["unlabelled_reason"].startswith("unlabelled: auto -> none for your own data")
    assert "reading the unlabelled corpus" not in caplog.text
    assert "on the training split (126 texts) [unlabelled: auto -> none for your own data" in caplog.text  # says why


def test_debug_preset_saves_no_checkpoint(workspace):
    workspace.main("fit", "--config", workspace.default_config, "--config", workspace.presets / "debug.yaml")
    assert not list(workspace.root.rglob("*.ckpt")), "the debug preset promises nothing saved"


def test_vanilla_preset_turns_the_tricks_off(workspace):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from {{ cookiecutter.package_name }}.callbacks import EarlyStopping, GradNormMonitor

    def callback_types(*configs: Path) -> tuple:
        args = [f"--config={config}" for config in configs] + [f"--data.limit={workspace.limit}"]
        cli = workspace.cli(*args)
        return cli, {type(callback) for callback in cli.trainer.callbacks}

    cli, types = callback_types(workspace.default_config)  # the control: default.yaml has every trick on
    assert cli.trainer.gradient_clip_val == 5.0
    assert {EarlyStopping, GradNormMonitor} <= types

    cli, types = callback_types(workspace.default_config, workspace.presets / "vanilla.yaml")
    assert cli.trainer.gradient_clip_val is None
    assert not any(issubclass(kind, (EarlyStopping, GradNormMonitor)) for kind in types), types
    assert ModelCheckpoint in types
    assert cli.model.hparams.dropout == 0.0


def test_a_preset_alone_is_refused_with_the_command_that_stacks_it(workspace):
    preset = workspace.presets / "vanilla.yaml"
    code, printed = workspace.error("fit", "--config", preset)
    assert code == 2
    assert printed == (f"error: {preset} is a preset: it changes configs/default.yaml and does not stand alone. Stack "
                       f"it after the default: --config configs/default.yaml --config {preset}\n")
    assert sorted(path.name for path in workspace.root.iterdir()) == ["home"], "nothing created"


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
    run_id, run_dir = only(workspace.run_dirs())
    checks = {c["check"]: c for c in json.loads((run_dir / "sanity_checks.json").read_text())}
    assert checks["label_mix"]["status"] == "ok"  # bucketed batches keep the 87/13 mix
    summary = workspace.offline_run(run_id).summary
    assert summary["sanity/label_mix"]["status"] == "ok"


def overfit(workspace, *args):
    """``fit`` with the overfit preset (T51) on the test slice of MR; the exit status and the W&B summary."""
    code = 0
    try:
        workspace.main("fit", "--config", workspace.default_config, "--config", workspace.presets / "overfit.yaml",
                       "--data.limit", workspace.limit, *args)
    except SystemExit as exit_info:
        code = exit_info.code
    run_id, _ = only(workspace.run_dirs())
    return code, workspace.offline_run(run_id).summary


def test_overfit_preset_passes_on_fixed_mixed_batches(workspace, capsys):
    code, summary = overfit(workspace)
    out = capsys.readouterr().out
    assert code in (0, None)
    assert "Overfit test PASS" in out and "on 4 fixed batches" in out
    assert summary["overfit/passed"] is True and summary["overfit/acc"] == 1.0
    assert summary["overfit/loss"] <= 0.05 and summary["overfit/classes"] == 2  # both classes in the 4 batches
    assert 4 <= summary["overfit/steps"] < 300 and summary["overfit/steps"] % 4 == 0  # whole epochs of 4 batches


def test_overfit_preset_fails_with_exit_status_1(workspace, capsys):
    code, summary = overfit(workspace, "--model.lr", "1e-6", "--trainer.max_steps", "8")  # far too little to learn
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"Overfit test FAIL: loss 0\.\d+ \(needs <= 0\.05\), accuracy 0\.\d+ \(needs >= 1\)", out), out
    assert "after 8 steps" in out and "check that the labels belong to the inputs" in out
    assert summary["overfit/passed"] is False and summary["overfit/steps"] == 8


def test_missing_data_file_is_refused_before_anything_is_created(workspace):
    code, printed = workspace.error("fit", "--config", workspace.default_config, "--data.data_path", "missing.csv")
    assert code == 2 and printed.startswith("error: ") and "missing.csv" in printed
    assert sorted(path.name for path in workspace.root.iterdir()) == ["home"], "no runs/, no W&B run, no cache"


def test_the_traceback_variable_shows_the_exception_itself(workspace, monkeypatch):
    from {{ cookiecutter.package_name }}.cli import TRACEBACK_VARIABLE

    monkeypatch.setenv(TRACEBACK_VARIABLE, "1")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        workspace.main("fit", "--config", workspace.default_config, "--data.data_path", "missing.csv")


def test_wrong_columns_are_named(workspace):
    Path("reviews.csv").write_text("review,sentiment\ngood film,pos\nbad film,neg\n", encoding="utf-8")
    code, printed = workspace.error("fit", "--config", workspace.default_config, "--data.data_path", "reviews.csv")
    assert code == 2 and re.search(r"^error: .*no column 'text'.*review, sentiment", printed), printed


def test_unknown_config_key_exits_non_zero(workspace):
    with pytest.raises(SystemExit) as exit_info:
        workspace.fit("--model.nonexistent", "1")
    assert exit_info.value.code not in (0, None)


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--help"], ["fit", "--help"]], ids=["help", "fit-help"])
def test_module_entry_point(workspace, args):
    result = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}", *args],
        env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage:" in result.stdout.lower()
    if args[0] == "fit":
        assert "--model.hidden_size" in result.stdout and "--data.limit" in result.stdout


def test_init_timeout_reaches_wandb(workspace, monkeypatch):
    """``--trainer.logger.init_args.init_timeout`` is the timeout wandb.init is given."""
    import wandb

    cli = workspace.cli(
        f"--config={workspace.default_config}",
        f"--data.limit={workspace.limit}",
        "--trainer.logger.init_args.init_timeout=5",
    )
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")  # "logged in"
    calls = []
    real_init = wandb.init

    def init(**kwargs):
        calls.append(kwargs)
        if kwargs.get("mode") != "offline":  # stands in for the unreachable server, without the wait
            raise wandb.errors.CommError("simulated: the W&B server did not answer")
        return real_init(**kwargs)

    monkeypatch.setattr(wandb, "init", init)
    logger = cli.trainer.logger
    try:
        logger.experiment
    finally:
        logger.finish()
    assert calls[-1]["mode"] == "offline"  # fell back after the failed online attempt
    settings = calls[0].get("settings")
    timeout = settings.get("init_timeout") if isinstance(settings, dict) else getattr(settings, "init_timeout", None)
    assert timeout == 5, f"wandb.init got settings={settings!r}"


def test_fit_after_changing_directory_in_same_process(workspace, tmp_path, monkeypatch):
    """As in a notebook: fit, ``%cd`` elsewhere, fit again; both offline runs are complete."""
    workspace.fit(epochs=1)
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    elsewhere = type(workspace)(other)
    elsewhere.fit(epochs=1)
    run_id, _ = only(elsewhere.run_dirs())
    assert elsewhere.offline_run(run_id).exit_code == 0
