"""The fault suite: runs stopped the hard way, then resumed, against one run never stopped.

Every case runs the project's own command line in a subprocess, with the default config made
small and deterministic (``faults.yaml``: {% if cookiecutter.task == "text_classification" %}600 MR sentences{% elif cookiecutter.task == "sequence_classification" %}JapaneseVowels' 216 training series{% else %}the digits' 1,008 training images, augmented{% endif %}, 3 epochs, a checkpoint every 4 steps,
``deterministic: true``{% if cookiecutter.task == "text_classification" %}, word2vec on one thread{% endif %}). A case stops a fit at a chosen point (``faults.py``:
kill -9, SIGTERM or Ctrl+C from inside; kill -9 from outside on a line of output), resumes it with
``--ckpt_path last`` and compares every scalar both runs logged to W&B (read back from the offline
runs) and the final weights with the uninterrupted reference. Other cases: DDP on two processes and
on two loopback nodes, a W&B key with no network, a full disk, a corrupt checkpoint.

With ``FAULTS_REPORT=<file>`` each case appends one JSON line with its outcome (the project's
README table of reliability is made from it). Marked ``slow`` and ``faults``: ``pytest -m faults``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import torch
import yaml

import {{ cookiecutter.package_name }}
from {{ cookiecutter.package_name }}.callbacks import read_offline_run

pytestmark = [pytest.mark.slow, pytest.mark.faults]

TESTS = Path(__file__).resolve().parent
DEFAULT_CONFIG = TESTS.parent / "configs" / "default.yaml"
TOLERANCE = 1e-6
#: checkpoint every 4 steps; 6 training batches per epoch, 3 epochs: 18 steps
EVERY_N_STEPS = 4


def record(case: str, **outcome: Any) -> None:
    """Append the case's outcome to ``$FAULTS_REPORT`` (one JSON line), when set."""
    path = os.environ.get("FAULTS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps({"case": case, **outcome}) + "\n")


def write_faults_config(folder: Path) -> Path:
    """``configs/default.yaml``, small and deterministic: every trick on, as users run it."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    for callback in config["trainer"]["callbacks"]:
        name, init_args = callback["class_path"].rsplit(".", 1)[-1], callback.setdefault("init_args", {})
        if name == "ResumableCheckpoint":
            init_args["every_n_train_steps"] = EVERY_N_STEPS
        elif name == "LRFinder":
            init_args["num_steps"] = 30
        elif name == "Word2VecInit":
            init_args.update(workers=1, cache_dir="w2v")  # one thread: gensim is deterministic; a cache per case
    config["trainer"].update(max_epochs=3, deterministic=True, log_every_n_steps=1)
{%- if cookiecutter.task == "text_classification" %}
    config["data"].update(limit=600, unlabelled=None)
{%- elif cookiecutter.task == "sequence_classification" %}
    config["data"].update(dataset="JapaneseVowels", batch_size=36)  # 216 training series: 6 steps an epoch, as 600 texts
{%- elif cookiecutter.task == "image_classification" %}
    config["data"].update(dataset="digits", batch_size=168)  # 1,008 training images: 6 steps an epoch, as 600 texts
{%- endif %}
    config["test_after_fit"] = False
    path = folder / "faults.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def environment(folder: Path, **extra: str) -> dict[str, str]:
    """No W&B credentials (runs go offline by themselves), this package and ``faults.py`` importable."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    home = folder / "home"
    home.mkdir(exist_ok=True)
    source = str(Path({{ cookiecutter.package_name }}.__file__).resolve().parents[1])
    env.update(HOME=str(home), NETRC=str(home / ".netrc"), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [source, str(TESTS), env.get("PYTHONPATH", "")])))
    env.update(extra)
    return env


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "{{ cookiecutter.package_name }}", "fit", "--config", str(config), *args]


def run(folder: Path, config: Path, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """``fit`` in its own process group, its output in files; a run killed by a signal takes its group with it.

    That is what a scheduler's kill or the OOM killer does to a job: every process of it goes, W&B's service
    included. Left alive, the orphaned service would hold the output pipes open until it notices its parent
    is gone (about 90 s), and the test would wait for it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder.with_name(f"{folder.name}.stdout"), folder.with_name(f"{folder.name}.stderr")  # beside, not in it
    with out.open("w", encoding="utf-8") as stdout, err.open("w", encoding="utf-8") as stderr:
        # SIGINT as a terminal's foreground job has it: a test run in the background (``cmd &``) inherits an ignored
        # SIGINT, and Python then never raises KeyboardInterrupt
        process = subprocess.Popen(command(config, *args), cwd=folder, env=environment(folder, **env), stdout=stdout,
                                   stderr=stderr, text=True, start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            process.wait(timeout=timeout)
        finally:
            if process.returncode is None or process.returncode < 0:
                try:
                    os.killpg(process.pid, signal.SIGKILL)  # the group this test started, nothing else
                except ProcessLookupError:
                    pass
                process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out.read_text(encoding="utf-8"),
                                       err.read_text(encoding="utf-8"))


def run_dirs(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("runs/*/*") if path.is_dir() and path.parent.name != "wandb")


@functools.lru_cache(maxsize=None)
def offline_run(path: Path) -> Any:
    """An offline W&B segment, read once. Its process has ended (``run`` takes a killed run's whole process group
    with it), so nothing more will be written: a killed segment's missing ``exit`` record is waited for 5 s, not
    the reader's 30 (which, read three times per case, was most of a kill -9 case's time)."""
    return read_offline_run(path, wait=5.0)


def wandb_runs(folder: Path, run_id: Optional[str] = None) -> list[Path]:
    """The offline W&B folders, oldest first (the name starts with the start time)."""
    return sorted(folder.glob(f"runs/wandb/offline-run-*-{run_id or ''}*"))


def scalars(folder: Path, run_id: str) -> dict[tuple, float]:
    """Every scalar the run logged, by (key, global step, epoch); a resumed segment's values replace the
    interrupted segment's for the steps both logged."""
    values: dict[tuple, float] = {}
    for offline in wandb_runs(folder, run_id):
        for row in offline_run(offline).history:
            for key, value in row.items():
                if not key.startswith("_") and isinstance(value, (int, float)):
                    values[(key, row.get("trainer/global_step"), row.get("epoch"))] = float(value)
    return values


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The float tensors of the last and the best checkpoint of a run."""
    tensors = {}
    for path in sorted((run_dir / "checkpoints").glob("*.ckpt")):
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        kind = "best" if path.name.startswith("best") else "last"
        tensors.update({f"{kind}:{name}": value for name, value in state.items() if value.is_floating_point()})
    return tensors


def compare(reference: Path, other: Path, other_dir: Optional[Path] = None) -> dict[str, Any]:
    """Max abs differences of the logged scalars and of the final weights, and how much was compared."""
    (ref_dir,) = run_dirs(reference)
    if other_dir is None:
        (other_dir,) = run_dirs(other)
    ref, got = scalars(reference, ref_dir.name), scalars(other, other_dir.name)
    common = set(ref) & set(got)
    ref_weights, got_weights = weights(ref_dir), weights(other_dir)
    assert ref_weights.keys() == got_weights.keys()
    return {
        "scalars": len(common), "scalars_lost": len(set(ref) - set(got)), "scalars_extra": len(set(got) - set(ref)),
        "max_scalar_diff": max(abs(ref[key] - got[key]) for key in common),
        "max_weight_diff": max(float((ref_weights[name] - got_weights[name]).abs().max()) for name in ref_weights),
    }


class Suite:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = write_faults_config(root)
        self.reference = root / "reference"
        result = run(self.reference, self.config)
        assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    return Suite(tmp_path_factory.mktemp("faults"))


def assert_resumed_like_the_reference(suite: Suite, folder: Path, case: str, **outcome: Any) -> dict[str, Any]:
    resumed = run(folder, suite.config, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert len(run_dirs(folder)) == 1, f"one run folder: {run_dirs(folder)}"
    (run_dir,) = run_dirs(folder)
    segments = [offline_run(path) for path in wandb_runs(folder)]
    # kill -9 within seconds of the start can leave a segment W&B never wrote a record to: empty, nothing to sync
    ids = {segment.run_id for segment in segments if segment.run_id is not None or segment.history}
    assert ids == {run_dir.name}, f"every W&B segment continues run {run_dir.name}: {ids}"
    assert not list(folder.rglob("*.partial")) and not list(folder.rglob("*.tmp")), "a half-written file"
    measured = compare(suite.reference, folder)
    record(case, **outcome, segments=len(wandb_runs(folder)), resumed_exit=resumed.returncode, **measured,
           passed=measured["max_scalar_diff"] <= TOLERANCE and measured["max_weight_diff"] <= TOLERANCE)
    assert measured["max_scalar_diff"] <= TOLERANCE, measured
    assert measured["max_weight_diff"] <= TOLERANCE, measured
    # kill -9 loses the rows W&B had not written yet; the resumed segment logs every step from its checkpoint on
    resumed_from = min(row["trainer/global_step"] for row in offline_run(wandb_runs(folder)[-1]).history
                       if "trainer/global_step" in row)
    reference, got = scalars(suite.reference, run_dirs(suite.reference)[0].name), scalars(folder, run_dir.name)
    missing = [key for key in reference if key[1] is not None and key[1] >= resumed_from and key not in got]
    assert not missing, f"the resumed run did not log {missing[:5]}"
    return measured


# ----------------------------------------------------------------------------- kill -9, SIGTERM, Ctrl+C
STOPS = {
    "kill -9 mid-epoch (after step 11; checkpoint of step 8)": ("train_step:11", -signal.SIGKILL),
    "kill -9 right after a checkpoint (step 8)": ("after_checkpoint:8", -signal.SIGKILL),
    "kill -9 during validation (epoch 1)": ("val_batch:2", -signal.SIGKILL),
    "kill -9 at an epoch start (after epoch 1's checkpoint)": ("epoch_start:2", -signal.SIGKILL),
    "SIGTERM mid-epoch (after step 10)": ("train_step:10:TERM", 143),
    "SIGTERM at an epoch's last batch (step 12; the epoch still validates and saves)": ("train_step:12:TERM", 143),
    "Ctrl+C mid-epoch (after step 10)": ("train_step:10:INT", 1),
}


@pytest.mark.parametrize("case", list(STOPS))
def test_a_stopped_run_resumes_as_if_never_stopped(suite, case):
    fault, expected_exit = STOPS[case]
    folder = suite.root / fault.replace(":", "-")
    clock = folder / "fault-clock.txt"
    stopped = run(folder, suite.config, "--trainer.callbacks+=faults.FaultInjector", FAULT=fault,
                  FAULT_CLOCK=str(clock))
    ended = time.time()
    assert stopped.returncode == expected_exit, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    outcome: dict[str, Any] = {"stop": fault, "exit": stopped.returncode}
    if expected_exit == 143:
        outcome["signal_to_exit_s"] = round(ended - float(clock.read_text()), 2)  # includes the interpreter's exit
        first = offline_run(wandb_runs(folder)[0])
        assert first.preempting and first.exit_code == 143, "the W&B run says it was preempted"
        assert "preempted (SIGTERM)" in stopped.stderr and "--ckpt_path last" in stopped.stderr
    assert_resumed_like_the_reference(suite, folder, case, **outcome)


MARKERS = {
{%- if cookiecutter.task == "text_classification" %}
    "kill -9 as word2vec training starts (no checkpoint yet)": ("Word2VecInit: training", signal.SIGKILL),
{%- endif %}
    "kill -9 during the LR sweep (no checkpoint yet)": ("LR sweep:", signal.SIGKILL),
    "SIGTERM during the LR sweep (no checkpoint yet)": ("LR sweep:", signal.SIGTERM),
}


@pytest.mark.parametrize("case", list(MARKERS))
def test_a_run_stopped_before_its_first_checkpoint_starts_again(suite, case):
    marker, signum = MARKERS[case]
    folder = suite.root / case.split(" (")[0].replace(" ", "-")
    folder.mkdir()
    process = subprocess.Popen(command(suite.config), cwd=folder, env=environment(folder), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    seen = ""
    for line in iter(process.stdout.readline, ""):  # tqdm writes the sweep bar with \r, the start line with \n
        seen += line
        if marker in line:
            sent = time.time()
            process.send_signal(signum)
            break
    seen += process.communicate(timeout=120)[0]
    ended = time.time()
    expected = 143 if signum == signal.SIGTERM else -signum
    assert process.returncode == expected, seen[-3000:]
    assert "Traceback" not in seen
    outcome: dict[str, Any] = {"stop": f"{signal.Signals(signum).name} on the line {marker!r}", "exit": process.returncode}
    if signum == signal.SIGTERM:
        outcome["signal_to_exit_s"] = round(ended - sent, 2)
        assert "preempted (SIGTERM): no checkpoint yet" in seen
        stopped = offline_run(wandb_runs(folder)[0])
        assert stopped.preempting and stopped.exit_code == 143, "the W&B run says it was preempted"
    assert not list(folder.rglob("*.ckpt")), "stopped before any checkpoint"
    before = run_dirs(folder)
    resumed = run(folder, suite.config, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "--ckpt_path last: no resumable checkpoint" in resumed.stderr and "starting a new run" in resumed.stderr
    new = [path for path in run_dirs(folder) if path not in before]
    assert len(new) == 1
    measured = compare(suite.reference, folder, new[0])  # the stopped run left a config and no checkpoint
    record(case, **outcome, segments=1, resumed_exit=0, fresh=True, **measured,
           passed=measured["max_scalar_diff"] <= TOLERANCE and measured["max_weight_diff"] <= TOLERANCE)
    assert measured["max_scalar_diff"] <= TOLERANCE and measured["max_weight_diff"] <= TOLERANCE, measured
    assert measured["scalars_lost"] == 0


# ----------------------------------------------------------------------------- DDP
def assert_one_run(folder: Path, reports: Path, world_size: int, output: str) -> dict[str, Any]:
    (run_dir,) = run_dirs(folder)
    assert len(wandb_runs(folder)) == 1, "one W&B run"
    names = sorted(path.name for path in (run_dir / "checkpoints").glob("*.ckpt"))
    assert len(names) == 2 and names[1] == "last.ckpt" and names[0].startswith("best-"), names  # written once
{%- if cookiecutter.task == "text_classification" %}
    assert output.count("Word2VecInit: training") == 1 and len(list((folder / "w2v").iterdir())) == 1
{%- endif %}
    ranks = [json.loads(path.read_text()) for path in sorted(reports.glob("rank*.json"))]
    assert [rank["rank"] for rank in ranks] == list(range(world_size))
    assert len({rank["lr"] for rank in ranks}) == 1, f"the LR finder's decision differs across ranks: {ranks}"
    assert len({round(rank["weights"], 6) for rank in ranks}) == 1, f"ranks ended with different weights: {ranks}"
    run = offline_run(wandb_runs(folder)[0])
    assert run.exit_code == 0 and run.metric("val/acc") and run.metric("test/acc")
    return {"lr": ranks[0]["lr"], "steps": ranks[0]["steps"]}


def test_ddp_on_two_processes_through_the_cli(suite):
    folder, reports = suite.root / "ddp", suite.root / "ddp-ranks"
    reports.mkdir(parents=True)
    result = run(folder, suite.config, "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
                 "--test_after_fit=true", "--trainer.callbacks+=faults.RankReport", RANK_REPORT_DIR=str(reports))
    assert result.returncode == 0, result.stderr[-3000:]
    facts = assert_one_run(folder, reports, 2, result.stdout + result.stderr)
    record("DDP, 2 processes (gloo), default config", stop="-", exit=0, passed=True, **facts)


def test_ddp_on_two_loopback_nodes_through_the_cli(suite):
    reports = suite.root / "nodes-ranks"
    reports.mkdir()
    args = ["--trainer.strategy=ddp", "--trainer.devices=1", "--trainer.num_nodes=2", "--trainer.accelerator=cpu",
            "--test_after_fit=true", "--trainer.callbacks+=faults.RankReport"]
    nodes = []
    for node in (1, 0):
        folder = suite.root / f"node{node}"
        folder.mkdir()
        env = environment(folder, MASTER_ADDR="127.0.0.1", MASTER_PORT="29531", NODE_RANK=str(node),
                          RANK_REPORT_DIR=str(reports))
        nodes.append(subprocess.Popen(command(suite.config, *args), cwd=folder, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [process.communicate(timeout=600)[0] for process in nodes]
    assert [process.returncode for process in nodes] == [0, 0], outputs[1][-3000:] + outputs[0][-3000:]
    facts = assert_one_run(suite.root / "node0", reports, 2, outputs[1])
    assert not (suite.root / "node1" / "runs").exists(), "node 1 writes no run folder"
    record("DDP, 2 loopback nodes (num_nodes=2, NODE_RANK 0/1)", stop="-", exit=0, passed=True, **facts)


# ----------------------------------------------------------------------------- W&B, disk, checkpoint
def test_a_wandb_key_without_network_waits_a_bounded_time_and_logs_offline(suite):
    folder = suite.root / "wandb-key"
    start = time.monotonic()
    result = run(folder, suite.config, "--trainer.max_epochs=1", "--trainer.logger.init_args.init_timeout=5",
                 WANDB_API_KEY="0123456789abcdef0123456789abcdef01234567", WANDB_BASE_URL="http://127.0.0.1:9")
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    assert "could not reach W&B" in result.stderr
    (offline,) = wandb_runs(folder)
    assert offline_run(offline).exit_code == 0
    record("W&B API key, no network (init_timeout 5 s)", stop="-", exit=0, passed=True, fit_s=round(elapsed, 1))


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 1 MB filesystem (tmpfs; needs root), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()}); test_wandb_io's write tests make writes fail instead")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_stops_with_one_message_and_nothing_half_written(suite, small_disk):
    result = run(small_disk, suite.config)
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and "No space left on device" in last, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    partial = [str(path) for path in small_disk.rglob("*") if path.name.endswith((".partial", ".tmp"))]
    assert not partial, partial
    for path in small_disk.rglob("*.ckpt"):  # whatever was written is whole
        torch.load(path, map_location="cpu", weights_only=True)
    record("full disk (a 1 MB tmpfs)", stop="-", exit=result.returncode, passed=True, message=last[:160])


@pytest.mark.parametrize("subcommand", ["fit", "predict"])
def test_a_corrupt_checkpoint_is_named_and_never_loaded_unsafely(suite, subcommand):
    (run_dir,) = run_dirs(suite.reference)
    good = run_dir / "checkpoints" / "last.ckpt"
    folder = suite.root / f"corrupt-{subcommand}"
    folder.mkdir()
    corrupt = folder / "corrupt.ckpt"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
{%- if cookiecutter.task == "text_classification" %}
    predict = ["--data.predict_texts", '["fine"]']
{%- elif cookiecutter.task == "sequence_classification" %}
    predict = ["--data.predict_path", "new_series.npz"]  # never read: the checkpoint is refused first
{%- elif cookiecutter.task == "image_classification" %}
    predict = ["--data.predict_path", "new_images/"]  # never read: the checkpoint is refused first
{%- endif %}
    args = ["--ckpt_path", str(corrupt)] + (predict if subcommand == "predict" else [])
    result = subprocess.run([sys.executable, "-m", "{{ cookiecutter.package_name }}", subcommand,
                             *(["--config", str(suite.config)] if subcommand == "fit" else []), *args],
                            cwd=folder, env=environment(folder), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip() == f"error: {corrupt} is not a readable checkpoint (corrupt or truncated)."
    assert "weights_only" not in result.stderr and "Traceback" not in result.stderr
    assert sorted(path.name for path in folder.iterdir()) == ["corrupt.ckpt", "home"], "nothing created"
    record(f"corrupt checkpoint given to {subcommand}", stop="-", exit=2, passed=True,
           message=result.stderr.strip().replace(str(corrupt), "corrupt.ckpt"))
