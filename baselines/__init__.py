"""Baseline erasure methods, one module per method, each registered with `@register("<name>")`.

Every module is imported by `emso_bench.methods.get_method`, so `method=<name>` finds it. Formulas are
in each module's docstring and checked against closed forms in tests/test_baselines.py.
"""
