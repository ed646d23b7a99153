"""User-facing errors: one line, a non-zero exit, no traceback.

Library code raises `UserError` for anything a user can fix (a bad path, a malformed file, an unknown
name). Entry points wrap their body in `exit_on_user_error`, which prints `<prog>: error: <message>` on
stderr and exits with status 2. Every message names the file or config key and what was expected.
"""
from __future__ import annotations

import difflib
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator


class UserError(Exception):
    """An error in the user's input (config, file, name): reported in one line, never as a traceback."""


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest option, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(kind: str, name: str, options: Iterable[str]) -> UserError:
    """A UserError for an unknown name, listing the choices and the closest one."""
    options = sorted(options)
    listed = ", ".join(options) if len(options) <= 12 else f"{', '.join(options[:12])}, ... ({len(options)} in all)"
    return UserError(f"unknown {kind} '{name}'{did_you_mean(name, options)}; expected one of: {listed}")


@contextmanager
def exit_on_user_error(prog: str) -> Iterator[None]:
    """Turn a UserError into one line on stderr and exit status 2."""
    try:
        yield
    except UserError as err:
        print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
