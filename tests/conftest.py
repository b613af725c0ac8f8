import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# One persistent XLA compilation cache for the test run (set before anything imports jax): the
# binaries that tests start as subprocesses, and the xdist workers, compile many of the same
# programs. Keyed by the program, jax version and flags, so a stale entry is never used; under
# .pytest_cache, so a fresh clone (CI) starts empty.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "xla"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# Less LLVM optimisation of XLA:CPU code, and its classic loop emitters instead of the fusion
# emitters (the train step compiles in 1.3 s instead of 2.9 s): the tests' programs run briefly
# and compile often, so compile time dominates; semantics are unchanged.
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                  "--xla_cpu_use_fusion_emitters=false")
os.environ.setdefault("XLA_FLAGS", TEST_XLA_FLAGS)
# Fixtures that train or simulate (seconds each): pytest-xdist runs the tests that use one of
# them on one worker (--dist loadgroup, pyproject.toml), so the fixture is built once per run
# instead of once on each worker that draws one of its tests. They and the test modules' other
# built fixtures are session-scoped: a module-scoped one was torn down and built again whenever
# a worker ran another module's test between two of its users (seen in timed runs: `fold`, 10 s,
# and `one_epoch_run`, 6 s, each built twice on one worker).
SHARED_FIXTURES = ("one_epoch_run", "fold", "single_run", "simulated_arm")


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in SHARED_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))
                break


V2 = ROOT / "data" / "opensim_wrist_v2"
V2_SPEC = ROOT / "data_specs" / "opensim_wrist_v2.toml"
TEST_DATA = pathlib.Path(__file__).resolve().parent / "data"


def v2_spec_text(root: str, subjects=("S1",), trials=(0, 1, 3)) -> str:
    """The shipped v2 spec cut down to ``subjects`` and ``trials`` (test: trial_3), rooted at
    ``root``: a small, realistic lab dataset for tests."""
    text = V2_SPEC.read_text().replace('root = "../data/opensim_wrist_v2"', f'root = "{root}"')
    head, rest = text.split("\n[[subjects]]", 1)
    blocks = ("[[subjects]]" + rest).split("\n[split]")[0].split("\n\n[[")
    keep = []
    for b in blocks:
        b = b if b.startswith("[[") else "[[" + b
        subj = b.split('name = "', 1)[1].split('"')[0] if b.startswith("[[subjects]]") else \
            b.split('subject = "', 1)[1].split('"')[0]
        if subj not in subjects:
            continue
        if b.startswith("[[trials]]") and int(b.split('name = "trial_')[1][0]) not in trials:
            continue
        keep.append(b.strip())
    test = ", ".join(f'"{s}/trial_3"' for s in subjects)
    split = "\n[split]" + text.split("\n[split]")[1]
    split = split.replace('test = ["S1/trial_3", "S2/trial_3"]', f"test = [{test}]")
    return head + "\n\n" + "\n\n".join(keep) + "\n" + split


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny synthetic wrist dataset (2 subjects x 2 trials x 4 s, 0.3 s windows), simulated once
    per xdist worker; the path of its spec. Read it, do not change it."""
    from pinnmsk.data import loading, spec, synthetic

    out = tmp_path_factory.mktemp("tiny") / "data"
    base = spec.load_spec(str(ROOT / "data_specs" / "synthetic_wrist.toml"))
    path = synthetic.generate(base, loading.build_model(base), str(out),
                              synthetic.SyntheticConfig(n_subjects=2, n_trials=2, duration_s=4.0),
                              log=lambda s: None)
    text = open(path).read().replace("length_s = 1.0", "length_s = 0.3")
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.fixture
def lab(tmp_path):
    """Subject S1 of the v2 sample (trials 0, 1, 3) and its spec in tmp_path, to break."""
    shutil.copytree(V2 / "S1", tmp_path / "d" / "S1")
    p = tmp_path / "spec.toml"
    p.write_text(v2_spec_text("d"))
    return p
