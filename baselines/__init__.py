"""Baseline erasure methods, one module per method, each registered with `@register("<name>")`.

Installed as `emso_bench.baselines`; every module is listed in emso_bench/registry.py, so
`method=<name>` finds it. Formulas are in each module's docstring and checked against closed forms in tests/test_baselines.py.
"""
