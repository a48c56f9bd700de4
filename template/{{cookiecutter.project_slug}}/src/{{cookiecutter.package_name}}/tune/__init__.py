"""``{{ cookiecutter.package_name }} tune``: the tuning autopilot (T51, T01, T07/T06, T58, T61 in the practitioners'
order) and a classical search over the same space, on Optuna.

* ``plan.py``: the stages as pure functions (what to run next, given the trials so far).
* ``settings.py``: the plan file (``configs/tune.yaml``) read and checked against the config.
* ``study.py``: Optuna storages (journal file, PostgreSQL/MySQL), the claim lock, heartbeats, lost trials.
* ``trial_report.py``: inside a trial, the monitor reported each epoch and pruning.
* ``command.py``: the command: the coordinator and its workers.
* ``report.py``, ``sweep.py``: the report (Markdown, PNG, W&B) and the W&B sweep export.
"""

from .command import main

__all__ = ["main"]
