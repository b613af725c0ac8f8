"""The errors a user's mistake raises (a leaf module: anything may import it).

Each message names the file or field and the fix; the experiment binaries print it as one
``error:`` line and exit with status 2 (``experiments/cli.py``).
"""


class DataError(ValueError):
    """A user's data file or spec is wrong; the message names the file/field and the fix."""


class ConfigMismatch(DataError):
    """The work directory holds a run with a different configuration or model."""
