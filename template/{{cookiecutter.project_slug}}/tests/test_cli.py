"""End-to-end checks of the command line, the same for every task: fit, resume, presets and errors.

Runs go through the real ``ProjectCLI`` and the real W&B logger, offline because the
``isolated_wandb`` fixture removes every credential; what W&B recorded is read back from
the offline run on disk.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from {{ cookiecutter.package_name }}.cli import TASK
from {{ cookiecutter.package_name }}.models.blocks import MONITORS

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


def test_fit_writes_run_directory_and_offline_wandb_run(workspace, capfd, caplog):
    workspace.fit()

    run_id, run_dir = workspace.only_run()
    assert (run_dir / "config.yaml").is_file()
    best, last = workspace.checkpoints(run_dir)
    # last.ckpt: the final epoch whether or not it improved, with all a resume needs
    last_ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert last_ckpt["epoch"] == 1 and last_ckpt["optimizer_states"] and last_ckpt["callbacks"]
    # the best checkpoint: weights, vocabulary and labels only (what test and predict read), no second copy
    best_ckpt = torch.load(best, map_location="cpu", weights_only=True)
    assert "optimizer_states" not in best_ckpt and best_ckpt[TASK.datamodule.__qualname__]["labels"]
{%- if cookiecutter.task == "text_classification" %}
    assert not list(run_dir.glob("*.bin")), "the run folder keeps no copy of the word vectors"
{%- endif %}
    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["trainer"]["max_epochs"] == 2
    monitor = saved["model"]["monitor"]

    run = workspace.offline_run(run_id)
    assert run.exit_code == 0
    logged = {key for row in run.history for key in row}
    missing = [key for key in HISTORY_KEYS if key not in logged]
    assert not missing, f"not logged to W&B: {missing} (logged: {sorted(logged)})"
    accuracies = run.metric("val/acc")
    assert len(accuracies) == 2  # one per epoch
    assert all(0.0 <= acc <= 1.0 for acc in accuracies)
    watched = run.metric(monitor)

    # the whole resolved config, not only the model's hyperparameters
{%- if cookiecutter.task == "image_classification" %}
    assert run.config["model"]["width"] == 32
{%- else %}
    assert run.config["model"]["hidden_size"] == 128
{%- endif %}
    assert run.config["data"] == saved["data"]
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
    # default.yaml applies the reading as it is (check: never): no self-check ran
    assert run.summary["lr_finder/checked"] is False and run.summary["lr_finder/check_steps"] == 0
    expected = run.summary["lr_finder/suggestion"] if run.summary["lr_finder/applied"] else saved["model"]["lr"]
    assert applied == pytest.approx(expected)
    assert run.metric("lr-Adam")[0] == pytest.approx(applied)

    # the summary holds the best epoch's metrics (the best checkpoint's), the last epoch's under final/
    better = max if MONITORS[monitor] == "max" else min
    best_epoch = better(range(len(watched)), key=watched.__getitem__)
    assert run.summary[monitor] == pytest.approx(watched[best_epoch])
    assert run.summary["val/acc"] == pytest.approx(accuracies[best_epoch])
    assert run.summary["best/epoch"] == best_epoch
    assert run.summary["final/val/acc"] == pytest.approx(accuracies[-1])
    assert json.loads((run_dir / "best_metrics.json").read_text())["best/epoch"] == best_epoch
    # test_after_fit: the best checkpoint on the test split, in W&B and on the screen
    assert 0.0 <= run.summary["test/acc"] <= 1.0 and len(run.metric("test/acc")) == 1

    captured = capfd.readouterr()
    out, err = captured.out, captured.err
    assert re.search(re.escape(f"best {monitor}: ") + r"\d\.\d{4}   test/acc: 0\.\d{4}", out), out[-2000:]
    assert f"run folder:  runs/{workspace.project}/{run_id}" in out
    assert "next:" in out and "predict --ckpt_path" in out and TASK.own_data_example in out
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
    workspace.checkpoints(both[second_id])
    assert workspace.offline_run(second_id).exit_code == 0


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


def test_resume_last_skips_finished_runs_and_starts_afresh_without_one(workspace, caplog):
    workspace.fit(epochs=1)
    finished_id, run_dir = workspace.only_run()
    assert (run_dir / "checkpoints" / "last.finished").is_file()
    workspace.fit("--ckpt_path", "last", epochs=1)
    assert "--ckpt_path last: no resumable checkpoint" in caplog.text, "a finished run is not resumed by 'last'"
    assert len(workspace.run_dirs()) == 2 and finished_id in workspace.run_dirs()


def test_a_missing_or_weights_only_checkpoint_is_refused_before_anything_is_created(workspace):
    code, printed = workspace.error("predict", "--ckpt_path", "nowhere.ckpt")
    assert code == 2 and printed.startswith("error: --ckpt_path nowhere.ckpt: no such file.")
    assert sorted(path.name for path in workspace.root.iterdir()) == ["home"], "no lightning_logs/, no runs/"
    workspace.fit(epochs=1)
    _, run_dir = workspace.only_run()
    best, _ = workspace.checkpoints(run_dir)
    code, printed = workspace.error("fit", "--config", workspace.default_config, "--ckpt_path", best)
    assert code == 2 and "holds weights only" in printed and "--ckpt_path last" in printed


def test_one_monitor_switches_checkpointing_and_early_stopping_with_their_mode(workspace):
    """T57: ``--model.monitor val/loss`` alone moves every callback that watched val/acc, and flips its mode."""
    workspace.fit("--model.monitor", "val/loss", epochs=1)
    _, run_dir = workspace.only_run()
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    watching = {c["class_path"].rsplit(".", 1)[-1]: c["init_args"] for c in config["trainer"]["callbacks"]
                if (c.get("init_args") or {}).get("monitor")}
    assert set(watching) == {"ModelCheckpoint", "EarlyStopping"{% if cookiecutter.task == "image_classification" %}, "HalveOnPlateau"{% endif %}}, watching
    assert all(args["monitor"] == "val/loss" and args["mode"] == "min" for args in watching.values()), watching
    _, last = workspace.checkpoints(run_dir)
    states = torch.load(last, map_location="cpu", weights_only=True)["callbacks"]
    keys = [key for key in states if key.startswith(("ModelCheckpoint", "EarlyStopping")) and "val/" in key]
    assert len(keys) == 2 and all("'monitor': 'val/loss'" in key and "'mode': 'min'" in key for key in keys), keys


def test_debug_preset_runs(workspace):
    workspace.main("fit", "--config", workspace.default_config, "--config", workspace.presets / "debug.yaml")
    assert not workspace.run_dirs(), "fast_dev_run writes no run directory"
    assert not list(workspace.root.glob("runs/wandb/*run-*")), "fast_dev_run logs nothing to W&B"
    written = sorted(p.name for p in workspace.root.iterdir())
    assert written == ["home"], f"the debug preset wrote into the project folder: {written}"  # home/: the vector cache


def test_debug_preset_saves_no_checkpoint(workspace):
    workspace.main("fit", "--config", workspace.default_config, "--config", workspace.presets / "debug.yaml")
    assert not list(workspace.root.rglob("*.ckpt")), "the debug preset promises nothing saved"


def test_vanilla_preset_turns_the_tricks_off(workspace):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from {{ cookiecutter.package_name }}.callbacks import EarlyStopping, GradNormMonitor

    def callback_types(*configs: Path) -> tuple:
        args = [f"--config={config}" for config in configs] + list(workspace.quick)
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


def overfit(workspace, *args):
    """``fit`` with the overfit preset (T51) on the quick data; the exit status and the W&B summary."""
    code = 0
    try:
        workspace.main("fit", "--config", workspace.default_config, "--config", workspace.presets / "overfit.yaml",
                       *workspace.quick, *args)
    except SystemExit as exit_info:
        code = exit_info.code
    run_id, _ = workspace.only_run()
    return code, workspace.offline_run(run_id).summary


def test_overfit_preset_passes_on_fixed_mixed_batches(workspace, capsys):
    code, summary = overfit(workspace)
    out = capsys.readouterr().out
    assert code in (0, None)
    assert "Overfit test PASS" in out and "on 4 fixed batches" in out
    assert summary["overfit/passed"] is True and summary["overfit/acc"] == 1.0
    assert summary["overfit/loss"] <= 0.05 and summary["overfit/classes"] >= 2  # the 4 batches mix the classes
    assert 4 <= summary["overfit/steps"] < 300 and summary["overfit/steps"] % 4 == 0  # whole epochs of 4 batches


def test_overfit_preset_fails_with_exit_status_1(workspace, capsys):
    code, summary = overfit(workspace, "--model.lr", "1e-6", "--trainer.max_steps", "8")  # far too little to learn
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"Overfit test FAIL: loss \d\.\d+ \(needs <= 0\.05\), accuracy 0\.\d+ \(needs >= 1\)", out), out
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


def test_unknown_config_key_exits_non_zero(workspace):
    with pytest.raises(SystemExit) as exit_info:
        workspace.fit("--model.nonexistent", "1")
    assert exit_info.value.code not in (0, None)


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--help"], ["fit", "--help"]], ids=["help", "fit-help"])
def test_module_entry_point(workspace, args):
    result = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}", *args],
        env=workspace.subprocess_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage:" in result.stdout.lower()
    if args[0] == "fit":
        assert "--model.{% if cookiecutter.task == "image_classification" %}width{% else %}hidden_size{% endif %}" in result.stdout
        assert "--data.batch_size" in result.stdout


def test_init_timeout_reaches_wandb(workspace, monkeypatch):
    """``--trainer.logger.init_args.init_timeout`` is the timeout wandb.init is given."""
    import wandb

    cli = workspace.cli(
        f"--config={workspace.default_config}",
        *workspace.quick,
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
    run_id, _ = elsewhere.only_run()
    assert elsewhere.offline_run(run_id).exit_code == 0
