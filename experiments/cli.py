"""Shared plumbing for the absl binaries: one-line errors for user mistakes, help text."""

from __future__ import annotations

import os
import re
import sys

from absl import app, flags, logging

from pinnmsk import host
from pinnmsk.errors import DataError


class UsageError(Exception):
    """A bad flag value; the message says which flag and the fix."""


class WorkdirError(Exception):
    """The work directory cannot be used (a file, not writable, full, held by another run):
    exit status 4, apart from bad input (2) and divergence (3)."""


def run(main) -> None:
    """``absl.app.run(main)``, turning user mistakes into one stderr line and exit status 2."""

    def wrapped(argv):
        if logging.get_verbosity() == logging.INFO:  # not raised by the user with -v
            logging.set_verbosity(logging.WARNING)  # keep orbax/XLA chatter off the terminal
        try:
            return main(argv)
        except (DataError, UsageError) as e:
            _exit(f"error: {e}", 2)
        except WorkdirError as e:
            _exit(f"error: {e}", 4)

    if any(a in ("--help", "-h", "--helpshort") for a in sys.argv[1:]):
        print(help_text())  # absl would exit 1; asking for help is no error
        sys.exit(0)
    host.keep_freed_memory()  # XLA:CPU's step buffers reused, not page-faulted in every step
    host.run_on_calling_thread()  # ... those of any size (pinnmsk/host.py)
    app.run(wrapped, flags_parser=_parse_flags)


def _exit(line: str, code: int) -> None:
    """Print ``line`` to stderr and end the process with ``code`` at once. Not ``sys.exit``:
    after a failed checkpoint read, orbax's background threads post to an event loop that
    interpreter shutdown has closed and print "Event loop is closed" tracebacks under the
    one-line error. Everything the binaries write is closed by then (context managers)."""
    print(line, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _parse_flags(argv):
    """absl's flag parsing, with a bad or missing flag as one ``error:`` line and exit status
    2 (absl prints a multi-line FATAL block and exits 1)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        missing = re.findall(r"Flag --(\w+) must have a value other than None", str(e))
        text = (f"missing required flag(s): {', '.join('--' + m for m in missing)}" if missing
                else " ".join(str(e).split()).replace("flag --", "--"))
        print(f"error: {text}; see --help", file=sys.stderr)
        sys.exit(2)


def _required(name: str) -> bool:
    """Whether absl's ``mark_flag_as_required`` was called on the flag ``name``."""
    return any("must have a value other than None" in getattr(v, "message", "")
               for v in flags.FLAGS[name].validators)


def help_text() -> str:
    """The binary's docstring and every flag defined by the experiments package, required
    flags marked."""
    doc = (sys.modules["__main__"].__doc__ or "").strip()
    mods = [m for m in flags.FLAGS.flags_by_module_dict()
            if m == sys.argv[0] or "experiments" in m]
    text = "\n\n".join([doc] + [flags.FLAGS.module_help(m) for m in mods])
    for name in flags.FLAGS:
        if _required(name):
            text = text.replace(f"  --{name}: ", f"  --{name}: (required) ", 1)
    return text
