import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "opensim_wrist_sample"
TEST_DATA = pathlib.Path(__file__).resolve().parent / "data"


@pytest.fixture
def sample_dir():
    return SAMPLE
