"""emso-bench: reproduce and extend EMSO (selective entropy maximization) for memorized-sequence erasure."""

__version__ = "0.1.0"
