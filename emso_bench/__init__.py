"""emso-bench: reproduce and extend EMSO (selective entropy maximization) for memorized-sequence erasure."""

from .quiet import install as _quiet

__version__ = "0.1.0"
_quiet()  # before transformers is imported by any entry point (quiet.py says what and why)
