"""The utility suite's local lm-eval tasks: YAML task configs plus the Python hooks they name.

lm-eval finds the YAML files through `lm_eval.tasks.TaskManager(include_path=TASKS_DIR)`; the YAMLs name
their hooks as `!function <module>.<name>`, which lm-eval resolves to the module file next to the YAML
(it loads that file by path, so the hook modules use absolute imports only). Every task reads vendored
data through a `custom_dataset` hook: nothing is downloaded and no path depends on the current
directory. See README.md in this directory for the tasks, prompts, metrics and chance levels.
"""
from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
