"""The tuning autopilot and Optuna searches (``tune``): the plan's order as pure functions, then studies through the
CLI on real data: the order of trials and what was kept, tuned.yaml, W&B groups{% if cookiecutter.task == "sequence_classification" %}, two workers on one journal file,
two "machines" on a real PostgreSQL server with one killed mid-trial, an interrupted study resumed, pruning{% endif %}."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.tune.plan import Knob, Plan, Record, key_of, next_step
from {{ cookiecutter.package_name }}.tune.settings import PlanError, build_plan, read_settings

KNOBS = (Knob("weight_decay", "model.weight_decay", None, try_values=(1e-3, 1e-4)),
         Knob("dropout", "model.dropout", 0.5, ladder=(0.1, 0.2)),
         Knob("recurrent_dropout", "model.weight_dropout", 0.0, ladder=(0.2, 0.4, 0.5), instead={0.4: 0.3}))
STAGE_ONE = {"lr": 0.002, "batch_size": 64, "train_size": 5000}


def synthetic(params: dict) -> float:
    """A made-up validation accuracy: 1e-4 and dropout 0.2 help, recurrent dropout 0.2 helps, 0.4 hurts, 0.3 helps most."""
    value = 0.70 + {1e-4: 0.01, 1e-3: -0.01}.get(params.get("model.weight_decay"), 0.0)
    value += {0.1: 0.02, 0.2: 0.03}.get(params.get("model.dropout"), 0.0)
    value += {0.2: 0.01, 0.4: -0.01, 0.3: 0.015}.get(params.get("model.weight_dropout"), 0.0)
    return value + {128: 0.005}.get(params.get("data.batch_size"), 0.0)


def drive(plan: Plan, budget: int = 50) -> tuple[list, object]:
    """One worker running the plan to its end on ``synthetic``: (the steps in order, the final step)."""
    records, steps = [], []
    while True:
        step = next_step(plan, records, budget)
        if step.kind != "run":
            return steps, step
        steps.append(step)
        records.append(Record(step.params, "complete", synthetic(step.params), STAGE_ONE if step.stage == 1 else {}))


def test_the_plan_runs_the_stages_in_order_and_keeps_what_helped():
    steps, end = drive(Plan(knobs=KNOBS))
    assert [(s.stage, s.knob, s.value) for s in steps] == [
        (1, "baseline", None),                                     # the config as it is, its LR finder on
        (2, "batch_size", 128), (2, "batch_size", 256),            # T07, each at its scaled LR (T06)
        (3, "weight_decay", 1e-3), (3, "weight_decay", 1e-4),      # try both, keep the better
        (3, "dropout", 0.1), (3, "dropout", 0.2),                  # 0.1 helped, so 0.2
        (3, "recurrent_dropout", 0.2), (3, "recurrent_dropout", 0.4), (3, "recurrent_dropout", 0.3)]  # else 0.3
    assert steps[1].params == {"model.lr": 0.004, "data.batch_size": 128}  # linear scaling from 0.002 at 64
    assert end.kind == "done"
    assert json.loads(end.best) == {"model.lr": 0.004, "data.batch_size": 128, "model.weight_decay": 1e-4,
                                    "model.dropout": 0.2, "model.weight_dropout": 0.3}
    assert [d.kept for d in end.decisions] == [0.002, 128, 1e-4, 0.2, 0.3]


def test_a_ladder_stops_at_the_first_value_that_does_not_help():
    knob = Knob("dropout", "model.dropout", 0.5, ladder=(0.1, 0.2))
    plan = Plan(knobs=(knob,), batch_sizes=())
    records = [Record({}, "complete", 0.80, STAGE_ONE)]
    step = next_step(plan, records, 10)
    assert step.params == {"model.lr": 0.002, "data.batch_size": 64, "model.dropout": 0.1}
    records.append(Record(step.params, "complete", 0.79))  # 0.1 does not help: 0.2 is never tried
    end = next_step(plan, records, 10)
    assert end.kind == "done" and end.best == key_of({})  # the kept configuration is stage 1's run itself
    assert end.decisions[-1].kept == 0.5


def test_workers_are_never_given_the_same_configuration_and_wait_for_what_the_next_stage_needs():
    plan = Plan(knobs=KNOBS)
    records = [Record({}, "complete", 0.7, STAGE_ONE)]
    first = next_step(plan, records, 50)
    records.append(Record(first.params, "running"))
    second = next_step(plan, records, 50)
    records.append(Record(second.params, "running"))
    assert first.params != second.params and {first.value, second.value} == {128, 256}
    assert next_step(plan, records, 50).kind == "wait"  # stage 3 builds on stage 2's winner
    # a pruned or failed trial never helps; a rerun of it still queued does not count twice
    records[1:] = [Record(first.params, "pruned"), Record(second.params, "failed"), Record(first.params, "waiting")]
    assert next_step(plan, records, 50).params["data.batch_size"] == 64


def test_the_budget_ends_the_plan_with_the_best_configuration_so_far():
    steps, end = drive(Plan(knobs=KNOBS), budget=5)
    assert len(steps) == 5 and end.kind == "done" and end.reason == "budget"
    assert json.loads(end.best)["model.weight_decay"] == 1e-4
    # the knob the budget cut short is in the report with what it would have tried next (shown "not run")
    assert end.decisions[-1].knob == "dropout" and [v for v, _ in end.decisions[-1].tried] == [0.5, 0.1]


def test_plan_file_mistakes_are_named_before_any_trial_runs(tmp_path):
    config = {"model": {"dropout": 0.5, "lr": 0.003}, "data": {"batch_size": 32}}
    with pytest.raises(PlanError, match=r"knobs\[0\] \(dropout\): model.dropuot is not an option of the tuned config; "
                                        r"model has dropout, lr\."):
        build_plan({"knobs": [{"name": "dropout", "arg": "model.dropuot", "ladder": [0.1]}]}, config, True, "tune.yaml")
    with pytest.raises(PlanError, match=r"knobs\[0\]: model.lr is set by stages 1 and 2"):
        build_plan({"knobs": [{"name": "lr", "arg": "model.lr", "try": [0.1]}]}, config, True, "tune.yaml")
    with pytest.raises(PlanError, match=r"knobs\[0\] \(dropout\): give the values to try"):
        build_plan({"knobs": [{"name": "dropout", "arg": "model.dropout"}]}, config, True, "tune.yaml")
    path = tmp_path / "tune.yaml"
    path.write_text("trails: 3\n", encoding="utf-8")
    with pytest.raises(PlanError, match=r"unknown key\(s\) trails"):
        read_settings(path)
    plan = build_plan({"knobs": [{"name": "d", "arg": "model.dropout", "ladder": [0.1], "instead": {"0.1": 0.3}}]},
                      config, True, "tune.yaml")
    assert plan.knobs[0].default == 0.5 and plan.knobs[0].instead == {0.1: 0.3}  # keys as written, after JSON


def test_the_projects_plan_names_only_options_of_the_default_config(workspace):
    settings = read_settings(workspace.project_root / "configs" / "tune.yaml")
    cli = workspace.cli("--config", workspace.default_config, *workspace.quick, "--trainer.logger=false")
    config = {"model": dict(cli.config.model), "data": dict(cli.config.data)}
    plan = build_plan(settings, config, True, "configs/tune.yaml")
    assert [k.name for k in plan.knobs][:2] == ["weight_decay", "dropout"]


@pytest.mark.parametrize("args, message", [
    (["--trials", "0"], "error: --trials must be >= 1, got 0.\n"),
    (["--workers", "0"], "error: --workers must be >= 1, got 0.\n"),
    (["--ckpt_path", "last"], "error: --ckpt_path cannot be tuned or resumed per trial; leave it out (tune resumes the "
                              "study by itself when the same command runs again).\n"),
    (["--plan", "missing.yaml"], "error: missing.yaml: no such plan file; `tune` reads the knobs and ladders from "
                                 "configs/tune.yaml (or --plan FILE).\n"),
])
def test_bad_tune_arguments_are_refused_with_one_line_and_nothing_written(workspace, args, message):
    code, said = workspace.error("tune", "--config", workspace.default_config, *args)
    assert (code, said) == (2, message)
    assert not (workspace.root / "runs").exists()


def test_fit_arguments_the_cli_refuses_stop_tune_before_a_study_exists(workspace, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", workspace.subprocess_env()["PYTHONPATH"])
    code, said = workspace.error("tune", "--config", workspace.default_config, "--model.dropuot", "0.2")
    assert code == 2 and said.startswith("error: the fit arguments are not accepted: ") and "dropuot" in said
    assert not (workspace.root / "runs").exists()


# ------------------------------------------------------------------ studies through the CLI
def study(url: str, name: str):
    import optuna

    from {{ cookiecutter.package_name }}.tune.study import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=None))


def tune(workspace, *args, epochs: int = 2) -> None:
    workspace.main("tune", "--config", workspace.default_config, *workspace.quick, "--trainer.max_epochs", epochs,
                   "--tuned", workspace.root / "tuned.yaml", *args)


@pytest.fixture
def subprocesses(workspace, monkeypatch):
    """Trials and workers are subprocesses: this package importable, one thread each."""
    monkeypatch.setenv("PYTHONPATH", workspace.subprocess_env()["PYTHONPATH"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return workspace


@pytest.mark.slow
def test_a_small_study_runs_the_stages_in_order_and_writes_what_it_kept(subprocesses):
    workspace = subprocesses
    tune(workspace, "--study", "small", "--trials", 4)
    folder = workspace.root / "runs" / workspace.project / "small"
    found = study(str(folder / "study.journal"), "small")
    trials = sorted(found.get_trials(), key=lambda t: t.number)
    assert len(trials) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert "PASS" in found.user_attrs["preflight"]  # stage 0 ran and passed
    assert trials[0].user_attrs["params"] == {} and trials[0].user_attrs["stage"] == 1
    # the order: every trial is what the plan asked for, given the trials before it
    from {{ cookiecutter.package_name }}.tune.command import plan_of
    from {{ cookiecutter.package_name }}.tune.study import records

    setup = found.user_attrs["setup"]
    plan = plan_of(setup)
    recorded = records(found)
    for k in range(1, len(trials)):
        wanted = next_step(plan, recorded[:k], 4)
        assert wanted.kind == "run" and wanted.params == trials[k].user_attrs["params"], k
    stages = [t.user_attrs["stage"] for t in trials]
    assert stages == sorted(stages)
    # what was kept: the best of the trials, in tuned.yaml and the report
    end = next_step(plan, recorded, 4)
    best = [t for t in trials if key_of(t.user_attrs["params"]) == end.best] or [trials[0]]
    values = [t.value for t in trials if t.state.name == "COMPLETE"]
    assert best[0].value == (max if setup["maximize"] else min)(values)
    tuned = yaml.safe_load((workspace.root / "tuned.yaml").read_text(encoding="utf-8"))
    for arg, value in best[0].user_attrs["params"].items():
        section, name = arg.split(".", 1)
        assert tuned[section][name] == pytest.approx(value) if isinstance(value, float) else tuned[section][name] == value
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "## Stage 1: lr" in report and f"kept: trial #{best[0].number}" in report and (folder / "report.png").is_file()
    # W&B: each trial a run in the study's group, tagged with its stage; a summary run with the table of trials
    from {{ cookiecutter.package_name }}.callbacks import read_offline_run

    runs = [read_offline_run(path, wait=30.0) for path in sorted((workspace.root / "runs" / "wandb").glob("offline-run-*"))]
    grouped = [run for run in runs if run.group == "small"]
    assert sorted(tag for run in grouped for tag in run.tags if tag.startswith("stage-")).count("stage-1") == 1
    assert sum("stage-0" in run.tags for run in grouped) == 1  # stage 0's run
    (summary,) = [run for run in grouped if "summary" in run.tags]
    assert summary.summary["tune/trials"] == 4 and summary.summary["tune/best_trial"] == best[0].number
{%- if cookiecutter.task == "sequence_classification" %}
    # tuned.yaml is complete: fit with it alone reproduces the kept trial's score
    from {{ cookiecutter.package_name }}.trials import RESULT_VARIABLE

    result = workspace.root / "again.json"
    os.environ[RESULT_VARIABLE] = str(result)
    try:
        workspace.main("fit", "--config", workspace.root / "tuned.yaml", "--test_after_fit=false")
    finally:
        del os.environ[RESULT_VARIABLE]
    assert json.loads(result.read_text(encoding="utf-8"))["score"] == pytest.approx(best[0].value, abs=1e-6)
{%- endif %}


@pytest.mark.slow
def test_the_sweep_export_holds_the_same_space_and_its_arguments_are_accepted(subprocesses):
    workspace = subprocesses
    path = workspace.root / "sweep.yaml"
    tune(workspace, "--sampler", "random", "--study", "sweep", "--export-wandb-sweep", path)
    sweep = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert sweep["method"] == "random" and sweep["command"][-1] == "${args}"
    assert {"model.lr", "data.batch_size", "model.dropout", "model.weight_decay"} <= set(sweep["parameters"])
    assert "model.optimizer" not in sweep["parameters"]  # a knob of several arguments per value is left out
    base = sweep["command"][sweep["command"].index("--config") + 1]
    for pick in (0, -1):  # every parameter at its first, then its last value, as `${args}` writes them
        args = [f"--{name}={spec['values'][pick]}" for name, spec in sweep["parameters"].items()]
        printed = subprocess.run([sys.executable, "-m", "{{ cookiecutter.package_name }}", "fit", "--config", base, *args,
                                  "--print_config"], capture_output=True, text=True, env=workspace.subprocess_env())
        assert printed.returncode == 0, printed.stderr[-2000:]
        config = yaml.safe_load(printed.stdout)
        for name, spec in sweep["parameters"].items():
            section, key = name.split(".", 1)
            value = spec["values"][pick]
            assert config[section][key] == (None if value == "null" else value)
        assert not any(str(c.get("class_path", "")).endswith(".LRFinder") for c in config["trainer"]["callbacks"])
{%- if cookiecutter.task == "sequence_classification" %}


@pytest.mark.slow
def test_two_workers_share_one_journal_file_and_never_run_one_configuration_twice(subprocesses):
    workspace = subprocesses
    tune(workspace, "--study", "pair", "--trials", 5, "--workers", 2, "--skip_preflight")
    found = study(str(workspace.root / "runs" / workspace.project / "pair" / "study.journal"), "pair")
    trials = found.get_trials()
    assert len(trials) == 5 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    keys = [key_of(t.user_attrs["params"]) for t in trials]
    assert len(set(keys)) == 5  # no configuration ran twice
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both workers ran trials


@pytest.mark.slow
def test_a_pipeline_that_cannot_overfit_stops_the_study_before_any_trial(subprocesses, capsys):
    workspace = subprocesses
    with pytest.raises(SystemExit) as stopped:
        tune(workspace, "--study", "broken", "--trials", 3, "--model.lr=1.0e-9")  # it cannot learn: T51 fails
    assert stopped.value.code == 1
    said = capsys.readouterr().err
    assert "Overfit test FAIL" in said and "stage 0 failed (exit 1)" in said and "--skip_preflight" in said
    found = study(str(workspace.root / "runs" / workspace.project / "broken" / "study.journal"), "broken")
    assert found.get_trials() == [] and "preflight" not in found.user_attrs


@pytest.fixture
def postgres():
    """A real PostgreSQL server on 127.0.0.1 (Debian's postgresql), for this test only."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        if os.environ.get("TUNE_TEST_POSTGRES") == "required":
            pytest.fail("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql")
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    bin_dir = found[-1].parent
    root = Path(tempfile.mkdtemp(prefix="tune-pg-"))  # outside pytest's private tmp: the server user must reach it
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as Debian's postgres user
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = root / "data"
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_user, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "tune"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/tune"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def machine(workspace, *args) -> subprocess.Popen:
    """``tune ...`` as another machine would run it: its own process group (killed as a whole)."""
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}", "tune", "--config", str(workspace.default_config),
               *map(str, workspace.quick), "--trainer.max_epochs", "3", "--tuned", str(workspace.root / "tuned.yaml"),
               *map(str, args)]
    return subprocess.Popen(command, env=workspace.subprocess_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, timeout: float = 300.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_two_machines_on_postgresql_finish_the_study_when_one_is_killed_mid_trial(subprocesses, postgres):
    workspace = subprocesses
    args = ("--storage", postgres, "--study", "shared", "--sampler", "random", "--trials", 4, "--heartbeat", 1)
    first = machine(workspace, *args)
    wait_for(lambda: _has_study(postgres, "shared"))
    second = machine(workspace, *args)

    def running_on_first():
        for trial in study(postgres, "shared").get_trials(deepcopy=False, states=None):
            pid = (trial.user_attrs.get("worker") or {}).get("pid")
            if trial.state.name == "RUNNING" and pid and _group_of(pid) == first.pid:
                return trial.number
        return None

    killed = wait_for(running_on_first)
    os.killpg(first.pid, signal.SIGKILL)  # the whole machine: its tune, its worker and the trial it ran
    first.wait()
    output, _ = second.communicate(timeout=900)
    assert second.returncode == 0, output[-3000:]
    trials = {t.number: t for t in study(postgres, "shared").get_trials()}
    assert trials[killed].state.name == "FAIL"  # failed by the heartbeat check ...
    retried = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retried) == 1 and retried[0].state.name in ("COMPLETE", "PRUNED")  # ... and run again
    assert retried[0].params == trials[killed].params
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials.values()) == 4


def _has_study(url: str, name: str) -> bool:
    try:
        return "setup" in study(url, name).user_attrs
    except Exception:  # noqa: BLE001 - not created yet (no tables, no study)
        return False


def _group_of(pid: int):
    try:
        return os.getpgid(int(pid))
    except ProcessLookupError:
        return None


@pytest.mark.slow
def test_an_interrupted_study_resumes_where_it_stopped(subprocesses):
    workspace = subprocesses
    args = ("--study", "again", "--trials", 3, "--skip_preflight")
    journal = str(workspace.root / "runs" / workspace.project / "again" / "study.journal")
    first = machine(workspace, *args)

    def one_done_one_running() -> bool:
        states = [t.state.name for t in study(journal, "again").get_trials()] if _has_study(journal, "again") else []
        return "COMPLETE" in states and "RUNNING" in states

    wait_for(one_done_one_running)
    os.killpg(first.pid, signal.SIGINT)  # Ctrl+C
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 130 and "run the same command again to resume" in output
    interrupted = [t for t in study(journal, "again").get_trials() if t.state.name == "FAIL"]
    assert len(interrupted) == 1 and interrupted[0].user_attrs.get("interrupted")
    again = machine(workspace, *args)
    output, _ = again.communicate(timeout=900)
    assert again.returncode == 0 and "resuming study again" in output, output[-3000:]
    trials = study(journal, "again").get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and len({key_of(t.user_attrs["params"]) for t in finished}) == 3
    assert key_of(interrupted[0].user_attrs["params"]) in {key_of(t.user_attrs["params"]) for t in finished}


@pytest.mark.slow
def test_pruning_stops_a_hopeless_trial_early(subprocesses):
    workspace = subprocesses
    plan = workspace.root / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "preflight": False, "batch_size": {"try": []},
        "knobs": [{"name": "dropout", "arg": "model.dropout", "try": [0.1, 0.3]},
                  {"name": "hopeless", "arg": "model.weight_decay", "try": [1000.0]}],  # weights forced to zero
        "pruning": {"keep_percentile": 75, "warmup_epochs": 2, "startup_trials": 3}}), encoding="utf-8")
    tune(workspace, "--study", "prune", "--plan", plan, "--trials", 4, epochs=10)
    trials = study(str(workspace.root / "runs" / workspace.project / "prune" / "study.journal"), "prune").get_trials()
    (hopeless,) = [t for t in trials if t.user_attrs.get("knob") == "hopeless"]
    assert hopeless.state.name == "PRUNED" and hopeless.user_attrs["epochs"] < 10
    assert max(hopeless.intermediate_values) >= 2  # not before the warm-up
    assert all(t.state.name == "COMPLETE" for t in trials if t.number != hopeless.number)
{%- endif %}
