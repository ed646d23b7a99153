"""emso-bench-report: turn a directory of runs (a sweep) into tables and plots (see cli.py)."""
