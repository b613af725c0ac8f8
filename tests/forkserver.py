"""Run the binaries for the tests without paying their start-up each time.

A binary's own work in a test is small (an epoch on a tiny dataset); its start-up is not:
importing jax, flax, optax, scipy, orbax and matplotlib takes ~3.5 s on 2 cores, and the suite
starts ~80 binaries. So each test process starts one server (this file run as a script) that
imports those libraries once, initialises nothing (no JAX backend, no binary's flags), and
forks a child per request; the child runs ``python -m experiments.<name> args`` exactly as the
interpreter would (``runpy`` as ``__main__``, its own argv, cwd, stdout and stderr, normal
interpreter exit), so the binary's flags, registries, JAX backend and settings are all its own.

What a forked child cannot show: a binary that uses a module it never imports (say
``scipy.signal`` after ``import scipy`` alone) would pass here and fail alone. The README's own
path (train, evaluate, predict in ``test_binaries_end_to_end``), ``--help`` without JAX and the
host-settings probes therefore still start real interpreters.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

# ------------------------------------------------------------------------------- the server


PRELOAD = ("numpy", "scipy.optimize", "scipy.signal", "scipy.stats", "jax", "jax.numpy",
           "flax.linen", "optax", "orbax.checkpoint", "matplotlib.pyplot", "tensorboardX")


def _preload() -> None:
    """Import what the binaries import, and nothing that defines flags or starts JAX."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")  # as pinnmsk.plots does at its first figure
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # tensorboardX is optional
            pass


def _child(req: dict) -> None:
    """In the forked child: become ``python -m <module> <args>`` and exit as it would."""
    import runpy

    for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.chdir(req["cwd"])
    sys.argv = [req["module"], *req["args"]]
    sys.path[0] = req["cwd"]  # what `python -m` puts first
    runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
    # an uncaught exception or sys.exit ends the child as it ends an interpreter


def serve() -> None:
    """Per request line: fork, wait for the child (killed past the request's timeout), answer
    one line with its exit status."""
    _preload()
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
            sys.exit(0)
        deadline, status, timed_out = time.monotonic() + req["timeout"], None, False
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                status, timed_out = os.waitpid(pid, 0)[1], True
            else:
                time.sleep(0.005)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status),
                          "timed_out": timed_out}), flush=True)


# ------------------------------------------------------------------------------- the client


class ForkServer:
    """``run(module, *args, cwd=...)`` → ``subprocess.CompletedProcess`` as
    ``subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True)``
    would give, from a child of one preloaded server (started on first use)."""

    def __init__(self):
        self._proc = None

    def run(self, module: str, *args: str, cwd: str, timeout: float = 600
            ) -> subprocess.CompletedProcess:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          text=True, bufsize=1)
        with tempfile.TemporaryDirectory() as tmp:
            req = {"module": module, "args": [str(a) for a in args], "cwd": str(cwd),
                   "stdout": os.path.join(tmp, "out"), "stderr": os.path.join(tmp, "err"),
                   "timeout": timeout}
            self._proc.stdin.write(json.dumps(req) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
            if not line:
                raise RuntimeError("the test fork server died")
            reply = json.loads(line)
            if reply["timed_out"]:
                raise subprocess.TimeoutExpired([module, *req["args"]], timeout)
            read = lambda p: open(p).read() if os.path.exists(p) else ""
            return subprocess.CompletedProcess([sys.executable, "-m", module, *req["args"]],
                                               reply["returncode"], read(req["stdout"]),
                                               read(req["stderr"]))

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=30)


_SERVER = ForkServer()  # one per test process (an xdist worker), closed when it ends
atexit.register(_SERVER.close)


def run(module: str, *args, cwd, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m module args`` in ``cwd`` from this test process's fork server."""
    return _SERVER.run(module, *args, cwd=cwd, timeout=timeout)


if __name__ == "__main__":
    serve()
