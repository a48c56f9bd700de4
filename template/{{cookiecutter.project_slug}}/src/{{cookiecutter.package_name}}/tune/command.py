"""``{{ cookiecutter.package_name }} tune``: the coordinator (set-up, stage 0, workers, progress, results) and the worker loop.

The coordinator writes the study's set-up into the study itself (the plan, the config without its LR finder,
the arguments), so workers on this machine and on others (``--storage postgresql://...``, the same command)
follow one plan. Each worker claims a trial under the study's lock, runs it as a ``fit`` subprocess and tells
the study how it ended; the coordinator shows progress and, when the workers are done, writes the results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import yaml

from ..trials import PACKAGE, TUNE_VARIABLE, Trial, command, config_files, fail, refuse, run_root, run_trial
from .plan import BASELINE, Plan, next_step
from .settings import build_plan, read_settings, search_space

MODES = ("autopilot", "tpe", "random", "grid")
MONITOR_MODES = {"val/acc": "max", "val/f1": "max", "val/loss": "min"}
FINDERS = (".LRFinder", ".BatchSizeSearch")  # fit-start steps that would overwrite model.lr / data.batch_size
INTERRUPTED = (130, 143)  # Ctrl+C, SIGTERM: the run stopped, it did not fail


# ------------------------------------------------------------------ arguments
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PACKAGE} tune",
        description="Tune in the practitioners' order (stage 0 pre-flight and overfit test, 1 LR finder, 2 batch "
                    "size, 3 one knob at a time, 4 an optional seed ensemble), or search the same space with Optuna. "
                    "Every other argument (--config, --model.*, --data.*, --trainer.*) goes to each trial's fit.")
    parser.add_argument("--sampler", default="autopilot", choices=MODES,
                        help="autopilot (the stages, default) | tpe | random | grid (Optuna over the same space)")
    parser.add_argument("--trials", type=int, default=None, help="the budget: trials in all (default: the plan's)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    parser.add_argument("--storage", default=None,
                        help="the study's storage: postgresql://... or mysql://... lets other machines join with the "
                             "same command (default: a journal file in the study folder)")
    parser.add_argument("--study", default=None, help="the study's name (default: from the sampler and arguments)")
    parser.add_argument("--plan", default=None, help="the plan file (default: tune.yaml beside the first --config)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="stage 4: a seed ensemble of the kept config with this many members (default: the plan's)")
    parser.add_argument("--skip_preflight", action="store_true", help="leave out stage 0")
    parser.add_argument("--sampler_seed", type=int, default=0, help="seed of tpe/random/grid (default 0)")
    parser.add_argument("--heartbeat", type=int, default=10,
                        help="RDB storages: seconds between a worker's heartbeats; a trial 3 beats late is retried")
    parser.add_argument("--export-wandb-sweep", dest="export", default=None, metavar="FILE",
                        help="write the same search space as a W&B sweep YAML and stop")
    parser.add_argument("--tuned", default=None, help="where the kept config goes (default: configs/tuned.yaml)")
    return parser


def default_name(mode: str, fit_args: list[str]) -> str:
    """``tune-<sampler>-<hash of the arguments>``: the same command finds (and resumes) the same study."""
    digest = hashlib.sha1(json.dumps([mode, fit_args]).encode()).hexdigest()[:8]
    return f"tune-{mode}-{digest}"


# ------------------------------------------------------------------ the config being tuned
def resolved_config(fit_args: list[str]) -> dict[str, Any]:
    """``fit <args> --print_config`` of this project's CLI: the complete config the trials start from."""
    done = subprocess.run([*command(Trial("print", ["fit", *fit_args, "--print_config"]))],
                          capture_output=True, text=True, env={**os.environ, "WANDB_SILENT": "true"})
    if done.returncode != 0:
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
        raise ValueError("the fit arguments are not accepted: " + " / ".join(last))
    return yaml.safe_load(done.stdout)


def without_finders(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``config`` without its LR finder and batch-size search (trials after stage 1 set both themselves)."""
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    kept = [cb for cb in callbacks if not str((cb or {}).get("class_path", "")).endswith(FINDERS)]
    removed = [cb["class_path"] for cb in callbacks if cb not in kept]
    return {**config, "trainer": {**config["trainer"], "callbacks": kept}}, removed


def value_arg(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def param_args(params: dict[str, Any], options: dict[str, dict[str, list[str]]]) -> list[str]:
    """The CLI arguments of a configuration: ``--model.dropout=0.2``; a named option's own arguments."""
    args: list[str] = []
    for arg, value in params.items():
        if arg in options:
            args += list(options[arg].get(str(value), ()))
        else:
            args.append(f"--{arg}={value_arg(value)}")
    return args


def trial_args(setup: dict[str, Any], params: dict[str, Any], stage: int, base: Path) -> list[str]:
    """A trial's command line after ``python -m {{ cookiecutter.package_name }}``."""
    if stage == 1:  # the config as it is, its LR finder included
        return ["fit", *setup["fit_args"]]
    return ["fit", "--config", str(base), *param_args(params, setup["options"])]


# ------------------------------------------------------------------ the study
def open_study(url: str, name: str, setup: dict[str, Any], worker: int = 0) -> Any:
    import optuna

    from .study import make_pruner, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url, heartbeat=setup.get("heartbeat", 10))
    seed = setup.get("sampler_seed", 0) + worker
    mode = setup["mode"]
    if mode == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True,
                                             n_startup_trials=min(10, max(3, setup["budget"] // 3)))
    elif mode == "grid":
        sampler = optuna.samplers.GridSampler(setup["space"], seed=setup.get("sampler_seed", 0))
    else:  # random, and the autopilot (whose trials are all queued with their parameters)
        sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True, sampler=sampler,
                                direction="maximize" if setup["maximize"] else "minimize",
                                pruner=make_pruner(setup["pruning"]))
    return study


def load_setup(url: str, name: str) -> Optional[dict[str, Any]]:
    import optuna

    from .study import is_rdb, open_storage

    if not is_rdb(url) and not Path(url).is_file():  # a new study: nothing written before its set-up is checked
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=None))
    except KeyError:
        return None
    return study.user_attrs.get("setup")


def plan_of(setup: dict[str, Any]) -> Plan:
    return build_plan(setup["settings"], setup["config"], setup["maximize"], setup["plan_file"])


def claim(study: Any, url: str, setup: dict[str, Any]) -> tuple[str, Any]:
    """Under the study's lock: ``("run", trial)``, ``("wait", None)`` or ``("done", step)``."""
    from optuna.trial import TrialState

    from .study import Heartbeat, claim_lock, fail_lost_trials, records, worker_id

    with claim_lock(url, study.study_name):
        for number in fail_lost_trials(study, url):
            print(f"trial #{number} lost its worker: failed, and queued again", file=sys.stderr, flush=True)
        budget = int(study.user_attrs.get("budget", setup["budget"]))
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            if setup["mode"] == "autopilot":
                step = next_step(plan_of(setup), records(study), budget)
                if step.kind != "run":
                    return step.kind, step
                study.enqueue_trial({}, user_attrs={"params": step.params, "stage": step.stage, "knob": step.knob,
                                                    "value": step.value})
            else:
                found = records(study)
                if not any(r.params == {} for r in found) and budget > 0:  # trial 0: the config as it is
                    study.enqueue_trial({}, user_attrs={"params": {}, "stage": 1, "knob": BASELINE, "value": None})
                elif len(found) >= budget:
                    running = [r for r in found if r.state in ("running", "waiting")]
                    return ("wait", None) if running else ("done", None)
        with warnings.catch_warnings():  # Optuna beats only inside Study.optimize; our workers beat themselves
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            trial = study.ask()
        if setup["mode"] != "autopilot" and "params" not in trial.user_attrs:
            params = {}
            for arg, values in setup["space"].items():
                value = trial.suggest_categorical(arg, values)
                if arg in ("model.lr", "data.batch_size") or value != setup["defaults"].get(arg):
                    params[arg] = value
            trial.set_user_attr("params", params)
            trial.set_user_attr("stage", 0)
            trial.set_user_attr("knob", setup["mode"])
        trial.set_user_attr("worker", worker_id())
        with Heartbeat(study._storage, trial._trial_id):  # the first beat, under the lock
            pass
        return "run", trial


def run_one(study: Any, url: str, setup: dict[str, Any], trial: Any, folder: Path, threads: Optional[int]) -> None:
    """Run a claimed trial as a ``fit`` subprocess and tell the study how it ended."""
    from optuna.trial import TrialState

    from .study import Heartbeat

    attrs = trial.user_attrs
    params, stage, knob = attrs["params"], int(attrs.get("stage", 0)), str(attrs.get("knob", ""))
    value = attrs.get("value")
    tags = ["tune", f"stage-{stage}", knob] + ([f"{knob}={value_arg(value)}"] if stage >= 2 else [])
    env = {"WANDB_RUN_GROUP": study.study_name, "WANDB_TAGS": ",".join(tags), "WANDB_JOB_TYPE": "trial",
           TUNE_VARIABLE: json.dumps({"storage": url, "study": study.study_name, "trial_id": trial._trial_id,
                                       "monitor": setup["monitor"], "pruning": setup["pruning"]})}
    run = Trial(f"trial-{trial.number:03d}", trial_args(setup, params, stage, folder / "base.yaml"), env)
    try:
        with Heartbeat(study._storage, trial._trial_id):
            result = run_trial(run, folder / "logs", threads)
    except KeyboardInterrupt:
        study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        study.tell(trial, state=TrialState.FAIL)
        raise
    report = result.result or {}
    for name, item in (("returncode", result.returncode), ("seconds", round(result.seconds, 1)),
                       ("epochs", report.get("epochs")), ("run_dir", report.get("run_dir")),
                       ("test", report.get("test")), ("log", str(result.log)), ("command", " ".join(run.args))):
        study._storage.set_trial_user_attr(trial._trial_id, name, item)
    stored = study._storage.get_trial(trial._trial_id)
    score = report.get("score")
    if result.returncode in INTERRUPTED or result.returncode < 0:
        study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)  # run again, not a result
        study.tell(trial, state=TrialState.FAIL)
    elif stored.user_attrs.get("pruned_at_epoch") is not None:
        study.tell(trial, state=TrialState.PRUNED)
    elif result.ok and score is not None and math.isfinite(float(score)):
        study.tell(trial, float(score))
    else:
        study._storage.set_trial_user_attr(trial._trial_id, "failure", "run")
        study.tell(trial, state=TrialState.FAIL)


def work(url: str, name: str, folder: Path, worker: int, threads: Optional[int]) -> None:
    """One worker: claim, run, tell, until the study is done."""
    setup = load_setup(url, name)
    if setup is None:
        raise SystemExit(f"error: no study {name} in {url}")
    study = open_study(url, name, setup, worker)
    write_base(folder, setup)
    while True:
        kind, item = claim(study, url, setup)
        if kind == "done":
            return
        if kind == "wait":
            time.sleep(2.0)
            continue
        run_one(study, url, setup, item, folder, threads)


def write_base(folder: Path, setup: dict[str, Any]) -> Path:
    """The config the trials after stage 1 start from, in this machine's study folder."""
    path = folder / "base.yaml"
    text = ("# the tuned config without its LR finder and batch-size search: trials after stage 1 set model.lr and "
            "data.batch_size themselves\n" + yaml.safe_dump(setup["config"], sort_keys=False))
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text(path, text)
    return path


def write_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a partial file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


# ------------------------------------------------------------------ the coordinator
def new_setup(options: argparse.Namespace, fit_args: list[str], plan_file: Path, budget: Optional[int]) -> dict[str, Any]:
    """Everything the workers need, read once: stored in the study, so every machine follows the same plan."""
    settings = read_settings(plan_file)
    print("reading the config (fit --print_config) ...", flush=True)
    base, removed = without_finders(resolved_config(fit_args))
    monitor = str(base["model"]["monitor"])
    if monitor not in MONITOR_MODES:
        raise ValueError(f"model.monitor {monitor} is not one of {', '.join(MONITOR_MODES)}.")
    maximize = MONITOR_MODES[monitor] == "max"
    plan = build_plan(settings, base, maximize, str(plan_file))
    return {"mode": options.sampler, "fit_args": fit_args, "settings": settings, "plan_file": str(plan_file),
            "config": base, "removed": removed, "monitor": monitor, "maximize": maximize,
            "budget": int(budget or settings.get("trials", 20)), "pruning": dict(settings.get("pruning") or {}),
            "space": search_space(plan, settings, base), "defaults": {k.arg: k.default for k in plan.knobs},
            "options": {k.arg: {n: list(a) for n, a in k.options.items()} for k in plan.knobs if k.options},
            "sampler_seed": options.sampler_seed, "heartbeat": options.heartbeat, "package": PACKAGE}


def preflight(setup: dict[str, Any], folder: Path, name: str) -> str:
    """Stage 0: the pre-flight checks (SanityChecks, strict: T50/T52/T53) on the overfit test (T51)."""
    configs = config_files(setup["fit_args"])
    overfit = (Path(configs[0]).parent if configs else Path("configs")) / "presets" / "overfit.yaml"
    if not overfit.is_file():
        raise FileNotFoundError(f"{overfit}: stage 0 runs the overfit preset; restore it or pass --skip_preflight.")
    args = ["fit", *setup["fit_args"], "--config", str(overfit),
            f"--trainer.callbacks+={PACKAGE}.callbacks.SanityChecks", "--trainer.callbacks.init_args.strict=true"]
    env = {"WANDB_RUN_GROUP": name, "WANDB_TAGS": "tune,stage-0,preflight", "WANDB_JOB_TYPE": "preflight"}
    print("stage 0: pre-flight checks and the overfit test (T51) ...", flush=True)
    result = run_trial(Trial("stage-0-preflight", args, env), folder / "logs")
    text = result.log.read_text(encoding="utf-8", errors="replace")
    verdict = [line.strip() for line in text.splitlines() if "Overfit test" in line]
    if result.returncode != 0:
        said = [line.strip() for line in text.splitlines()
                if line.startswith(("error:", "warning:")) or "FAIL" in line][-8:]
        print("\n".join(said), file=sys.stderr)
        fail(f"stage 0 failed (exit {result.returncode}): the pipeline has a problem that tuning cannot fix; see "
              f"above and {result.log}. Fix it first (or, knowingly, --skip_preflight).")
    return (verdict[-1] if verdict else "passed") + f" ({result.seconds:.0f} s)"


def spawn(url: str, name: str, folder: Path, index: int, threads: Optional[int]) -> subprocess.Popen:
    args = [sys.executable, "-m", f"{PACKAGE}.tune", "worker", "--storage", url, "--study", name,
            "--folder", str(folder), "--worker", str(index)] + (["--threads", str(threads)] if threads else [])
    log = (folder / "logs" / f"worker-{index}.log").open("a", encoding="utf-8")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def line_of(trial: Any, setup: dict[str, Any]) -> str:
    attrs = trial.user_attrs
    what = "the config as it is (LR finder on)" if attrs.get("params") == {} else \
        (f"{attrs.get('knob')}={value_arg(attrs.get('value'))}" if int(attrs.get("stage", 0)) >= 2 else
         ", ".join(f"{k.split('.')[-1]}={value_arg(v)}" for k, v in attrs.get("params", {}).items()))
    state = trial.state.name.lower()
    if trial.state.name == "COMPLETE":
        state = f"{setup['monitor']} {trial.value:.4f}"
    elif trial.state.name == "PRUNED":
        state = f"pruned at epoch {attrs.get('pruned_at_epoch')}"
    elif attrs.get("failure") == "run":
        state = f"failed (exit {attrs.get('returncode')}; {attrs.get('log')})"
    elif trial.state.name == "FAIL":
        state = "lost or interrupted: queued again"
    stage = int(attrs.get("stage", 0))
    return f"#{trial.number:<3d} {('stage %d' % stage) if stage else setup['mode']:<9} {what}: {state}" + \
        (f", {attrs.get('epochs')} epochs, {attrs.get('seconds'):.0f} s" if attrs.get("seconds") else "")


def watch(study: Any, setup: dict[str, Any], url: str, name: str, folder: Path, workers: int) -> None:
    """Start the workers, show the trials as they finish, restart a worker that died while work remains."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    procs = {i: spawn(url, name, folder, i, threads) for i in range(workers)}
    restarts, shown = 0, set()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, transient=False) as progress:
            bar = progress.add_task(f"{name} ({workers} worker{'s' if workers > 1 else ''})",
                                    total=int(study.user_attrs.get("budget", setup["budget"])))
            while procs:
                for trial in study.get_trials(deepcopy=False):
                    finished = trial.state.name in ("COMPLETE", "PRUNED", "FAIL")
                    if finished and trial.number not in shown and trial.datetime_complete is not None:
                        shown.add(trial.number)
                        progress.console.print(line_of(trial, setup), soft_wrap=True)
                done = sum(1 for t in study.get_trials(deepcopy=False)
                           if t.state.name in ("COMPLETE", "PRUNED") or t.user_attrs.get("failure") == "run")
                progress.update(bar, completed=done)
                for index, proc in list(procs.items()):
                    if proc.poll() is None:
                        continue
                    del procs[index]
                    if proc.returncode != 0:
                        progress.console.print(f"warning: worker {index} ended with exit {proc.returncode} (log: "
                                               f"{folder / 'logs' / f'worker-{index}.log'})")
                        if not procs and restarts < 3:
                            restarts += 1
                            procs[index] = spawn(url, name, folder, index, threads)
                time.sleep(1.0)
    except KeyboardInterrupt:
        for proc in procs.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
        print(f"interrupted: run the same command again to resume study {name}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def kept(study: Any, setup: dict[str, Any]) -> tuple[Optional[Any], list[Any], str]:
    """(the kept trial, the autopilot's decisions, why the plan ended)."""
    from .report import trial_for_key
    from .study import records

    trials = study.get_trials(deepcopy=False)
    if setup["mode"] == "autopilot":
        step = next_step(plan_of(setup), records(study), int(study.user_attrs.get("budget", setup["budget"])))
        return (trial_for_key(trials, step.best) if step.best else None), step.decisions, step.reason
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if not complete:
        return None, [], "no trial completed"
    best = (max if setup["maximize"] else min)(complete, key=lambda t: t.value)
    return best, [], ""


def write_tuned(best: Any, setup: dict[str, Any], path: Path, name: str) -> Path:
    """The kept trial as a complete config (``fit --print_config`` of its own arguments)."""
    params = best.user_attrs["params"]
    args = trial_args(setup, params, 1 if params == {} else 2, Path(setup["folder"]) / "base.yaml")[1:]
    text = yaml.safe_dump(resolved_config(args), sort_keys=False)
    header = (f"# Written by `{PACKAGE} tune` (study {name}): trial #{best.number}, {setup['monitor']} "
              f"{best.value:.4f}.\n# `{PACKAGE} fit --config {path}` reproduces it; the trial ran: fit {' '.join(args)}\n")
    write_text(path, header + text)
    return path


def summary_run(name: str, setup: dict[str, Any], trials: list[Any], best: Optional[Any], png: Path, md: Path) -> None:
    """A W&B run in the study's group with the table of trials, the report's plot and the kept values."""
    from ..wandb_logger import WandbLogger
    from .report import table

    logger_args = ((setup["config"].get("trainer") or {}).get("logger") or {})
    if isinstance(logger_args, list):
        logger_args = logger_args[0] if logger_args else {}
    if not isinstance(logger_args, dict) or not str(logger_args.get("class_path", "")).endswith("WandbLogger"):
        return  # the config logs elsewhere, or nowhere: the report files are all there is
    init_args = dict(logger_args.get("init_args") or {})
    logger = WandbLogger(project=init_args.get("project"), save_dir=init_args.get("save_dir", "runs"),
                         entity=init_args.get("entity"), group=name, job_type="tune", tags=["tune", "summary"],
                         name=f"{name}-summary", init_timeout=init_args.get("init_timeout", 30))
    import wandb

    columns, data = table(trials)
    logger.log_table("tune/trials", columns=columns, data=data)
    logger.experiment.log({"tune/report": wandb.Image(str(png))})
    summary = {"tune/trials": len(data), "tune/mode": setup["mode"], "tune/monitor": setup["monitor"]}
    if best is not None:
        summary.update({"tune/best_trial": best.number, "tune/best_value": best.value,
                        **{f"tune/best/{k}": v for k, v in best.user_attrs.get("params", {}).items()}})
    logger.experiment.summary.update(summary)
    logger.experiment.save(str(md), base_path=str(md.parent), policy="now")
    logger.finish(quiet=True)


def main(argv: list[str], default_save_dir: str, default_project: str, check_presets: Any) -> None:
    """``{{ cookiecutter.package_name }} tune ...``; see the module docstring and the README's "Tuning" section."""
    options, fit_args = parser().parse_known_args(argv)
    if options.trials is not None and options.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {options.trials}.")
    if options.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {options.workers}.")
    if options.heartbeat < 1:
        raise ValueError(f"--heartbeat must be >= 1 second, got {options.heartbeat}.")
    refuse(fit_args, ("--ckpt_path", "--ensemble", "--print_config"),
           "cannot be tuned or resumed per trial; leave it out (tune resumes the study by itself when the same "
           "command runs again).")
    if fit_args[:1] and not fit_args[0].startswith("-"):
        raise ValueError(f"tune takes fit's arguments, not a subcommand ({fit_args[0]!r}): "
                         f"{PACKAGE} tune --config configs/default.yaml ...")
    configs = config_files(fit_args)
    check_presets(configs)
    plan_file = Path(options.plan) if options.plan else (Path(configs[0]).parent if configs else Path("configs")) / "tune.yaml"
    name = options.study or default_name(options.sampler, fit_args)
    folder = run_root(fit_args, default_save_dir, default_project) / name
    url = options.storage or str(folder / "study.journal")
    setup = load_setup(url, name)
    if setup is None:
        setup = new_setup(options, fit_args, plan_file, options.trials)
        setup["folder"] = str(folder)
    elif setup["fit_args"] != fit_args or setup["mode"] != options.sampler:
        raise ValueError(f"study {name} in {url} was started as `tune --sampler {setup['mode']} "
                         f"{' '.join(setup['fit_args'])}`; run that, or name a new study with --study NAME.")
    else:
        print(f"resuming study {name} ({url})", flush=True)
    setup["folder"] = str(folder)
    if options.export:
        from .sweep import write_sweep

        path = write_sweep(Path(options.export), setup, folder)
        print(f"W&B sweep: {path} (its base config: {folder / 'base.yaml'})\n  wandb sweep {path}   then   "
              f"wandb agent <the sweep id it prints>", flush=True)
        return
    study = open_study(url, name, setup)
    if "setup" not in study.user_attrs:
        study.set_user_attr("setup", setup)
    budget = options.trials or int(study.user_attrs.get("budget", setup["budget"]))
    study.set_user_attr("budget", budget)
    write_base(folder, setup)
    print(f"study {name}: {setup['mode']}, {budget} trials, {options.workers} worker(s); storage {url}; "
          f"folder {folder}", flush=True)
    if setup["mode"] == "autopilot" and setup["settings"].get("preflight", True) and not options.skip_preflight:
        done = study.user_attrs.get("preflight")
        if not done:
            done = preflight(setup, folder, name)
            study.set_user_attr("preflight", done)
        print(f"stage 0: {done}", flush=True)
        setup["preflight_result"] = done
    watch(study, setup, url, name, folder, options.workers)
    finish(study, setup, name, folder, options)


def finish(study: Any, setup: dict[str, Any], name: str, folder: Path, options: argparse.Namespace) -> None:
    """The results: tuned.yaml, report.md/png, the W&B summary run, stage 4."""
    from .report import figure, markdown

    best, decisions, reason = kept(study, setup)
    trials = study.get_trials(deepcopy=False)
    baseline = next((t for t in sorted(trials, key=lambda t: t.number)
                     if t.state.name == "COMPLETE" and t.user_attrs.get("params") == {}), None)
    configs = config_files(setup["fit_args"])
    tuned = Path(options.tuned) if options.tuned else (Path(configs[0]).parent if configs else Path("configs")) / "tuned.yaml"
    if best is not None:
        write_tuned(best, setup, tuned, name)
        write_text(folder / "tuned.yaml", tuned.read_text(encoding="utf-8"))
    setup = {**setup, "preflight_result": study.user_attrs.get("preflight"),
             "budget": int(study.user_attrs.get("budget", setup["budget"]))}
    png = figure(folder / "report.png", setup, trials, decisions)
    md = folder / "report.md"
    write_text(md, markdown(name, setup, trials, decisions, best, baseline, tuned if best else None, png, reason))
    summary_run(name, setup, trials, best, png, md)
    print(md.read_text(encoding="utf-8").split("## Result", 1)[-1].strip(), flush=True)
    print(f"report: {md} (+ {png.name})", flush=True)
    if best is None:
        fail(f"no configuration to keep ({reason or 'no trial completed'}); see {md} and the logs in {folder / 'logs'}.")
    print(f"kept:   {tuned}   ({PACKAGE} fit --config {tuned})", flush=True)
    seeds = options.seeds if options.seeds is not None else int(setup["settings"].get("seeds", 0) or 0)
    if seeds >= 2:  # stage 4: a seed ensemble of the kept configuration (T61)
        print(f"stage 4: a seed ensemble of {seeds} members of the kept config (T61) ...", flush=True)
        done = subprocess.run(command(Trial("ensemble", ["ensemble", "--config", str(tuned), "--members", str(seeds),
                                                         "--workers", str(options.workers), "--group", f"{name}-ensemble"])))
        if done.returncode != 0:
            fail(f"stage 4 (the seed ensemble) failed with exit {done.returncode}.")
