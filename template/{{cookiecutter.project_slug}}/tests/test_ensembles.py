"""Ensembles through the command line: the seed ensemble (T61), snapshots (T60), EMA (T62), the classical blend (T63),
the hard-example table and oversampling. Every check reads what the runs wrote: files, checkpoints, offline W&B runs."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch
import yaml

from {{ cookiecutter.package_name }}.callbacks import read_offline_run
from {{ cookiecutter.package_name }}.callbacks.blend import BLEND_FILE, blend, blend_for, classical_probabilities, load_blend
from {{ cookiecutter.package_name }}.callbacks.ensemble import read_manifest

pytestmark = pytest.mark.slow


def predict_args(workspace) -> list:
    """Inputs to predict, as the task reads them."""
{%- if cookiecutter.task == "text_classification" %}
    return ["--data.predict_texts", '["a gripping film", "dull and lifeless", "not bad at all"]']
{%- elif cookiecutter.task == "sequence_classification" %}
    from {{ cookiecutter.package_name }}.datamodules.sequence_io import aeon_data_dir

    path = shutil.copy(aeon_data_dir() / "JapaneseVowels" / "JapaneseVowels_TEST.ts", workspace.root / "new.ts")
    return ["--data.predict_path", path]
{%- else %}
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(workspace.root / "new.npz", X=digits.images[:12].astype(np.uint8), y=digits.target[:12])
    return ["--data.predict_path", workspace.root / "new.npz"]
{%- endif %}


def predictions(workspace, *args) -> list[dict]:
    """``predict *args`` in a folder of its own; its predictions.jsonl rows."""
    before = set(workspace.root.rglob("predictions.jsonl"))
    workspace.main("predict", *args)
    (path,) = set(workspace.root.rglob("predictions.jsonl")) - before
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def probabilities(rows: list[dict], labels: list[str]) -> np.ndarray:
    return np.array([[row["probabilities"][label] for label in labels] for row in rows])


def test_seed_ensemble_runs_members_in_one_group_and_tests_their_averaged_probabilities(workspace, monkeypatch):
    """T61: ``ensemble --members 2 --workers 2``: two fits that differ by seed, the manifest, one W&B group."""
    monkeypatch.setenv("PYTHONPATH", workspace.subprocess_env()["PYTHONPATH"])  # the members are subprocesses
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    workspace.main("ensemble", "--members", 2, "--workers", 2, "--group", "seeds", "--config", workspace.default_config,
                   *workspace.quick, "--trainer.max_epochs", 2)
    folder = workspace.root / "runs" / workspace.project / "seeds"
    manifest = yaml.safe_load((folder / "ensemble.yaml").read_text(encoding="utf-8"))
    assert manifest["kind"] == "seed" and [m["seed"] for m in manifest["members"]] == [1, 2]
    members = read_manifest(folder / "ensemble.yaml")
    assert len({m.checkpoint.parent.parent.name for m in members}) == 2  # two runs of their own
    assert (folder / "logs" / "member-1.log").is_file() and (folder / "logs" / "ensemble-test.log").is_file()

    # the ensemble's scores, recomputed here: each member through Lightning's predict loop, then the mean
    (path,) = (workspace.root / "runs" / workspace.project).glob("*/ensemble_test.json")  # the summary run's folder
    tested = json.loads(path.read_text(encoding="utf-8"))
    member_probs = []
    for member in members:
        checkpoint = torch.load(member.checkpoint, map_location="cpu", weights_only=True)
        cli = workspace.cli("--config", workspace.default_config, *workspace.quick, "--trainer.logger=false")
        cli.datamodule.load_state_dict(checkpoint[type(cli.datamodule).__qualname__])
        cli.model.load_state_dict(checkpoint["state_dict"])
        batches = cli.trainer.predict(cli.model, dataloaders=cli.datamodule.ordered_loader("test"))
        probs = torch.cat(batches).double().numpy()
        stored = blend_for(member.checkpoint)  # a member predicts as predict --ckpt_path does: blended, if fitted
        if stored is not None:
            classical = classical_probabilities(stored["model"], cli.datamodule.split_inputs("test"), probs.shape[1])
            probs = blend(probs, classical, stored["weight"])
        member_probs.append(probs)
        labels = cli.datamodule.split_labels("test")
    averaged = np.mean(member_probs, axis=0)
    assert tested["ensemble"]["acc"] == pytest.approx(float((averaged.argmax(1) == labels).mean()), abs=1e-9)
    nll = -np.mean(np.log(averaged[np.arange(len(labels)), labels]))
    assert tested["ensemble"]["nll"] == pytest.approx(nll, rel=1e-5)
    for row, probs in zip(tested["members"], member_probs):
        assert row["acc"] == pytest.approx(float((probs.argmax(1) == labels).mean()), abs=1e-9)

    # W&B: both members and the summary run in the group, the summary run holding the ensemble's metrics
    recorded = [read_offline_run(path, wait=30.0) for path in sorted((workspace.root / "runs" / "wandb").glob("offline-run-*"))]
    grouped = [run for run in recorded if run.group == "seeds"]
    assert len(grouped) == 3
    summary = [run for run in grouped if "summary" in run.tags]
    assert len(summary) == 1 and summary[0].summary["ensemble/test/acc"] == pytest.approx(tested["ensemble"]["acc"])
    assert summary[0].summary["member2/test/ece"] == pytest.approx(tested["members"][1]["ece"])
    assert sorted(tag for run in grouped for tag in run.tags if tag.startswith("seed-")) == ["seed-1", "seed-2"]


def test_predict_with_an_ensemble_averages_the_members_predictions(workspace):
    for seed in (1, 2):
        workspace.fit(f"--seed_everything={seed}", "--test_after_fit=false")
    bests = [workspace.checkpoints(run_dir)[0] for run_dir in workspace.run_dirs().values()]
    inputs = predict_args(workspace)
    singles = [predictions(workspace, "--ckpt_path", best, *inputs) for best in bests]
    together = predictions(workspace, "--ensemble", json.dumps([str(b) for b in bests]), *inputs)
    labels = list(together[0]["probabilities"])
    expected = np.mean([probabilities(rows, labels) for rows in singles], axis=0)
    assert np.allclose(probabilities(together, labels), expected, atol=2e-4)  # the files round to 4 decimals
    assert [row["label"] for row in together] == [labels[i] for i in expected.argmax(1)]


def test_ensemble_arguments_are_checked_before_anything_runs(workspace):
    code, message = workspace.error("fit", "--config", workspace.default_config, "--ensemble", "x.yaml")
    assert code == 2 and "--ensemble is for test and predict, not fit" in message
    code, message = workspace.error("test", "--config", workspace.default_config, "--ensemble", "missing.yaml")
    assert code == 2 and "--ensemble missing.yaml: no such file" in message
    code, message = workspace.error("ensemble", "--members", 1, "--config", workspace.default_config)
    assert code == 2 and "an ensemble needs --members >= 2, got 1." in message
    code, message = workspace.error("ensemble", "--config", workspace.default_config, "--seed_everything=3")
    assert code == 2 and "--seed_everything is set by the ensemble command itself" in message
    assert not (workspace.root / "runs").exists()


def test_snapshot_ensemble_saves_each_cycle_end_and_tests_as_an_ensemble(workspace):
    """T60: one run with three one-epoch cosine cycles leaves three snapshots and their manifest."""
    config = workspace.root / "snapshot.yaml"
    cycles = {"class_path": "{{ cookiecutter.package_name }}.callbacks.CyclicLR",
              "init_args": {"policy": "cosine_restarts", "t_0": 1, "t_mult": 1}}
    snapshots = {"class_path": "{{ cookiecutter.package_name }}.callbacks.SnapshotEnsemble"}
    config.write_text(yaml.safe_dump({"trainer": {"callbacks+": [cycles, snapshots]}}))
    workspace.fit("--config", config, epochs=3)
    run_id, run_dir = workspace.only_run()
    members = read_manifest(run_dir / "ensemble.yaml")
    assert [m.checkpoint.name for m in members] == [f"snapshot-cycle{k}.ckpt" for k in (1, 2, 3)]
    steps = [torch.load(m.checkpoint, map_location="cpu", weights_only=True)["global_step"] for m in members]
    assert steps[1] == 2 * steps[0] and steps[2] == 3 * steps[0]  # each at the end of its epoch-long cycle
    workspace.main("test", "--config", workspace.default_config, *workspace.quick, "--ensemble", run_dir / "ensemble.yaml")
    (result,) = [json.loads(p.read_text()) for p in workspace.root.rglob("ensemble_test.json")]
    assert len(result["members"]) == 3 and 0.0 <= result["ensemble"]["ece"] <= 1.0
    assert (next(workspace.root.rglob("ensemble_test.json")).parent / "calibration_test.png").is_file()


def test_ema_checkpoints_hold_the_average_and_resume_continues_it(workspace, capfd):
    """T62 through the CLI: last.ckpt keeps the raw weights and the average apart; a resumed fit continues both."""
    ema = workspace.presets / "ema.yaml"
    workspace.fit("--config", ema, epochs=2)
    assert "EMAWeights: validation" in capfd.readouterr().err
    run_id, run_dir = workspace.only_run()
    best, last = workspace.checkpoints(run_dir)
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["averaging_state"]["n_averaged"] > 0
    assert any(not torch.equal(state["state_dict"][k], state["current_model_state"][k]) for k in state["state_dict"])
    workspace.fit("--config", ema, "--ckpt_path", last, epochs=3)
    resumed = torch.load(last, map_location="cpu", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["averaging_state"]["n_averaged"] > state["averaging_state"]["n_averaged"]


def test_blend_is_stored_beside_the_checkpoint_and_predict_uses_it(workspace, tmp_path, capfd):
    """T63: the blend weight from validation only; predict with the checkpoint alone applies the blend."""
{%- if cookiecutter.task == "text_classification" %}
    workspace.fit()  # the blend is on in default.yaml for texts
{%- else %}
    workspace.fit("--config", workspace.presets / "blend.yaml")
{%- endif %}
    run_id, run_dir = workspace.only_run()
    best, _ = workspace.checkpoints(run_dir)
    stored = load_blend(best.parent)
    assert stored is not None and 0.0 <= stored["weight"] <= 1.0
    summary = workspace.offline_run(run_id).summary
    assert summary["blend/weight"] == stored["weight"]
    assert summary["val/blend_nll"] <= min(summary["val/network_nll"], summary["val/classical_nll"]) + 1e-9
    assert {"test/blend_acc", "test/classical_acc", "test/network_acc"} <= set(summary)

    inputs = predict_args(workspace)
    capfd.readouterr()
    blended = predictions(workspace, "--ckpt_path", best, *inputs)
    assert f"blended with the classical model in {best.parent / BLEND_FILE}" in capfd.readouterr().err
    alone = tmp_path / "alone"
    alone.mkdir()
    network = predictions(workspace, "--ckpt_path", shutil.copy(best, alone / best.name), *inputs)  # no blend.pkl
    labels = list(blended[0]["probabilities"])
    cli = workspace.cli("--config", workspace.default_config, *workspace.quick, *inputs, "--trainer.logger=false")
    cli.datamodule.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)[type(cli.datamodule).__qualname__])
    cli.datamodule.setup("predict")
    classical = classical_probabilities(stored["model"], cli.datamodule.split_inputs("predict"), len(labels))
    expected = blend(probabilities(network, labels), classical, stored["weight"])
    assert np.allclose(probabilities(blended, labels), expected, atol=2e-4)


def test_hard_examples_table_in_the_run_folder_and_in_wandb(workspace):
    workspace.fit()
    run_id, run_dir = workspace.only_run()
    with (run_dir / "hard_examples.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == min(20, len(rows)) and rows
    losses = [float(row["loss"]) for row in rows]
    assert losses == sorted(losses, reverse=True)
    for row in rows:
        assert float(row["loss"]) == pytest.approx(-math.log(max(float(row["p_label"]), 1e-12)), abs=2e-3)
        assert (row["label"] == row["predicted"]) == (float(row["p_label"]) == float(row["p_predicted"]))
    assert (run_dir / "hard_examples_test.csv").is_file()
    tables = sorted((workspace.wandb_dir(run_id) / "files" / "media" / "table").glob("hard_examples_*.table.json"))
    assert tables, "no hard_examples table in the W&B run"
    table = json.loads(tables[0].read_text())
    index = table["columns"].index("index")
    assert [str(line[index]) for line in table["data"]] == [row["index"] for row in rows]
    assert [line[table["columns"].index("label")] for line in table["data"]] == [row["label"] for row in rows]
{%- if cookiecutter.task != "text_classification" %}
    assert "view" in table["columns"] and (run_dir / "hard_examples.png").is_file()  # plots or thumbnails
{%- endif %}


def test_a_second_run_oversamples_the_hardest_training_examples(workspace, capfd):
    workspace.fit("--test_after_fit=false")
    (_, first), = workspace.run_dirs().items()
    losses = first / "train_losses.csv"
    count = len(losses.read_text(encoding="utf-8").splitlines()) - 1
    capfd.readouterr()
    workspace.fit("--test_after_fit=false", "--data.oversample", losses, "--data.oversample_factor", 3)
    hard = math.ceil(0.1 * count)
    assert (f"oversampling the {hard} hardest training examples x3 (from {losses}): {count + 2 * hard} examples an "
            "epoch.") in capfd.readouterr().err
