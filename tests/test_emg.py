import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from pinnmsk import emg

CFG = emg.EnvelopeConfig(fs_hz=1000.0, bandpass_hz=(20.0, 450.0), lowpass_hz=6.0)


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("which", ["bandpass_sos", "lowpass_sos"])
def test_filters_equal_scipy_float64(which):
    f = emg.EnvelopeFilter.from_config(CFG)
    sos = getattr(f, which)
    x = np.random.default_rng(0).standard_normal((2500, 4))
    with jax.enable_x64(True):
        xj = jnp.asarray(x)
        assert _rel(emg.sosfiltfilt(sos, xj), scipy.signal.sosfiltfilt(sos, x, axis=0)) < 1e-5
        y, _ = emg.sosfilt(sos, xj)
        assert _rel(y, scipy.signal.sosfilt(sos, x, axis=0)) < 1e-5


def test_filters_float32_close_to_scipy():
    # float32 coefficients move the 6 Hz poles slightly; the error stays small.
    f = emg.EnvelopeFilter.from_config(CFG)
    x = np.random.default_rng(1).standard_normal((2500, 3)).astype(np.float32)
    for sos in (f.bandpass_sos, f.lowpass_sos):
        ref = scipy.signal.sosfiltfilt(sos, x.astype(float), axis=0)
        assert _rel(jax.jit(lambda v: emg.sosfiltfilt(sos, v))(x), ref) < 2e-4


def test_envelope_pipeline_matches_scipy_reference():
    f = emg.EnvelopeFilter.from_config(CFG)
    x = np.random.default_rng(2).standard_normal((3000, 2))
    ref = scipy.signal.sosfiltfilt(f.lowpass_sos,
                                   np.abs(scipy.signal.sosfiltfilt(f.bandpass_sos, x, axis=0)),
                                   axis=0)
    with jax.enable_x64(True):
        assert _rel(f.offline(jnp.asarray(x)), np.maximum(ref, 0)) < 1e-5
        causal_ref = scipy.signal.sosfilt(
            f.lowpass_sos, np.abs(scipy.signal.sosfilt(f.bandpass_sos, x, axis=0)), axis=0)
        assert _rel(f.causal(jnp.asarray(x)), np.maximum(causal_ref, 0)) < 1e-5


def _chunked(f, x, bounds):
    state = f.init_state(x.shape[1], x.dtype)
    step = jax.jit(f.stream)
    pieces = []
    for lo, hi in bounds:
        state, y = step(state, x[lo:hi])
        pieces.append(y)
    return jnp.concatenate(pieces)


def test_streaming_in_chunks_equals_one_shot():
    f = emg.EnvelopeFilter.from_config(CFG)
    x = np.random.default_rng(3).standard_normal((1000, 3))
    bounds = [(0, 7), (7, 300), (300, 301), (301, 1000)]
    with jax.enable_x64(True):
        xj = jnp.asarray(x)
        np.testing.assert_allclose(_chunked(f, xj, bounds), f.causal(xj), rtol=1e-10, atol=1e-14)
    x32 = jnp.asarray(x, jnp.float32)
    assert _rel(_chunked(f, x32, bounds), np.asarray(f.causal(x32))) < 1e-4


def test_bad_input_raises():
    f = emg.EnvelopeFilter.from_config(CFG)
    x = np.random.default_rng(4).standard_normal((500, 2))
    x[123, 1] = np.nan
    with pytest.raises(ValueError, match="data row 124, channel 2"):
        f.offline(x)
    with pytest.raises(ValueError, match="Inf"):
        f.causal(np.full((50, 1), np.inf))
    with pytest.raises(ValueError, match="Nyquist"):
        emg.EnvelopeFilter.from_config(emg.EnvelopeConfig(fs_hz=800.0, bandpass_hz=(20, 450)))
    with pytest.raises(ValueError, match="Nyquist"):
        emg.butter_sos(2, 600.0, 1000.0, "lowpass")
    with pytest.raises(ValueError, match="too short"):
        f.offline(np.zeros((10, 2)))


def test_normalise_and_resample():
    env = jnp.array([[0.0, 2.0], [1.0, 4.0], [3.0, 8.0]])
    u = emg.normalise(env, jnp.array([2.0, 4.0]))
    np.testing.assert_allclose(u, [[0, 0.5], [0.5, 1.0], [1.0, 1.0]])
    rest = np.array([1.0, 0.0])
    un = emg.normalise(np.asarray(env), np.array([2.0, 4.0]), rest)
    assert isinstance(un, np.ndarray)  # NumPy stays NumPy (loaders, streamer)
    np.testing.assert_allclose(un, [[0, 0.5], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(emg.normalise(env, jnp.array([2.0, 4.0]), rest), un)
    t = jnp.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(emg.resample(t, env, jnp.array([0.5, 1.5])), [[0.5, 3.0], [2.0, 6.0]])
    assert np.allclose(emg.robust_max(np.arange(1001.0)[:, None], 0.5), 500.0)


def test_recordings_of_many_lengths_share_a_compiled_envelope():
    """The loader's causal envelope pads a recording with zeros to one of a few lengths
    (checks.padded_length): to the bit the filter of the recording itself, and recordings of
    six lengths within a bucket compile one program."""
    from tests.conftest import ROOT
    from pinnmsk.data import checks, spec

    envelope = checks.EnvelopeFn(spec.load_spec(str(ROOT / "data_specs" / "synthetic_wrist.toml")))
    f = envelope.filter
    direct = jax.jit(lambda x: f.causal(x, validate=False))
    rng = np.random.default_rng(0)
    for n in (9000, 9100, 9300, 9500, 9700, 10000):  # one bucket: 10240
        raw = 1e-3 * rng.standard_normal((n, 5))
        np.testing.assert_array_equal(
            envelope("x.csv", raw), np.asarray(direct(jnp.asarray(raw, jnp.float32)), np.float64))
    assert envelope._fn._cache_size() == 1
    assert [checks.padded_length(n) for n in (1, 1024, 1025, 8192, 8193, 20000)] == \
        [1024, 1024, 2048, 8192, 10240, 20480]
