"""A PyTorch twin of the physics-informed train step, to check the speed claim against PyTorch.

  pip install torch          # optional extra: pip install -e ".[bench]"
  python -m benchmarks.pytorch_twin [--quick]

Same layers and shapes (causal strided CNN encoder, continuous head with Fourier features of τ),
same physics (delayed excitation, De Groote activation dynamics by RK4 over the window's last
0.5 s, polynomial geometry, rigid-tendon Hill forces with pennation, the pendulum's equation of
motion, q̇/q̈/Ḟ by nested forward-mode AD of the head: ``torch.func.jvp``), same loss terms and
the same optimiser (global-norm clipping, Adam, warm-up + cosine). The parameters are copied
from the JAX state; a fidelity check asserts equal loss terms (1e-5 relative) on one batch with
the same collocation times before anything is timed. Then JAX's jitted step and the PyTorch eager
step (and ``torch.compile`` where it works) run in alternating blocks on the same batches.

Two simplifications, both in PyTorch's favour: the pendulum's inverse dynamics is written in
closed form (JAX derives it from the Lagrangian by autodiff), and the physics supports what the
embedded synthetic spec uses (one pendulum coordinate, rigid tendon, no residual torque). The
tests never import this module.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import device_name, print_table
from benchmarks.training import ROOT, SPEC, _flag, _step_program
from pinnmsk import activation, losses, muscle, physio, prepare, terms, train
from pinnmsk.data import loading, spec

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None


def _t(x, grad=False):
    return torch.tensor(np.asarray(x, np.float32), requires_grad=grad)


class Twin:
    """The PI step of ``prep``'s CNN model in PyTorch, parameters copied from a JAX state."""

    def __init__(self, prep, cfg, jax_params):
        if prep.data.spec.body.model != "pendulum" or prep.consts.tendon != "rigid" \
                or prep.consts.residual_torque or cfg.model != "cnn":
            raise SystemExit("the PyTorch twin covers the embedded synthetic spec's model "
                             "(CNN, pendulum, rigid tendon, no residual torque)")
        net = jax.device_get(jax_params["net"])["params"]
        self.enc = {k: {n: _t(v, True) for n, v in layer.items()}
                    for k, layer in net["encoder"].items()}
        self.head = {k: {n: _t(v, True) for n, v in layer.items()}
                     for k, layer in net["head"].items()}
        self.physio = {k: _t(v, True) for k, v in jax.device_get(jax_params["physio"]).items()
                       if k != "residual_torque"}
        e = prep.net.encoder
        self.strides, self.kernel = tuple(e.strides), e.kernel
        h = prep.net.head
        self.n, self.hidden, self.n_freq, self.horizon = h.n_coords, h.hidden, h.n_freq, \
            max(h.horizon_s, 1e-3)
        self.q_mean, self.q_std, self.f_scale = _t(h.q_mean), _t(h.q_std), _t(h.f_scale)
        c = prep.consts
        self.sigma_q, self.sigma_f, self.tau_scale = _t(c.sigma_q), _t(c.sigma_f), _t(c.tau_scale)
        self.bounds, self.prior_width = _t(c.bounds), _t(c.prior_width)
        self.rate, self.horizon_s, self.n_colloc = c.rate_hz, c.horizon_s, c.n_colloc
        base = jax.device_get(prep.data.models)  # stacked over subjects (S, ...)
        m, b, g = base.muscles, base.body, base.geometry
        self.f_max, self.l_opt, self.l_ts = _t(m.f_max_n), _t(m.l_opt_m), _t(m.l_ts_m)
        self.phi, self.vmax = _t(m.phi_opt_rad), _t(m.v_max_lopt_per_s)
        self.tau_act, self.tau_deact = _t(m.tau_act_s), _t(m.tau_deact_s)
        s = len(prep.data.subjects)
        per = lambda v: _t(np.broadcast_to(np.asarray(v, np.float32).reshape(s, -1)[:, :1], (s, 1)))
        self.inertia = per(np.asarray(b.inertia_kgm2)
                           + np.asarray(b.mass_kg) * np.asarray(b.com_m) ** 2)
        self.mgc = per(np.asarray(b.mass_kg) * np.asarray(b.gravity_mps2) * np.asarray(b.com_m))
        self.q_off, self.damp = per(b.q_offset_rad), per(b.damping_nms)
        self.stiff, self.q_rest = per(b.stiffness_nm), per(b.q_rest_rad)
        self.g_coef = _t(np.asarray(g.coefficients_m).reshape(s, *np.shape(g.coefficients_m)[-2:]))
        self.g_centre = _t(np.asarray(g.centre_rad).reshape(s, -1))  # (S, 1)
        self.g_scale = _t(np.asarray(g.scale_rad).reshape(s, -1))
        self.g_exps = torch.tensor(np.asarray(g.exponents)[:, 0], dtype=torch.float32)  # (K,)
        self.wf = cfg.force_labels

    def parameters(self):
        return [t for d in (self.enc, self.head) for layer in d.values() for t in layer.values()] \
            + list(self.physio.values())

    # ------------------------------------------------------------------ network
    def encode(self, x):  # (B, W, C) -> (B, latent)
        h = x.transpose(1, 2)
        for i, s in enumerate(self.strides):
            p = self.enc[f"conv{i}"]
            w = h.shape[-1]
            pad = self.kernel - 1 + (1 - w) % s
            h = F.conv1d(F.pad(h, (pad, 0)), p["kernel"].permute(2, 1, 0), p["bias"], stride=s)
            h = F.gelu(h, approximate="tanh")
        pooled = torch.cat([h[:, :, -1], h.mean(-1)], dim=-1)
        return pooled @ self.enc["to_latent"]["kernel"] + self.enc["to_latent"]["bias"]

    def decode(self, zp, tau):
        """zp (..., hidden): the z part of the head's first layer; tau (...,) → q (..., n),
        F (..., M)."""
        s = tau[..., None] / self.horizon
        k = torch.arange(1, self.n_freq + 1, dtype=torch.float32) * (math.pi / 2)
        feats = torch.cat([s, torch.sin(k * s), torch.cos(k * s)], dim=-1)
        h = F.gelu(zp + feats @ self.head["from_tau"]["kernel"], approximate="tanh")
        h = F.gelu(h @ self.head["Dense_0"]["kernel"] + self.head["Dense_0"]["bias"],
                   approximate="tanh")
        out = h @ self.head["Dense_1"]["kernel"] + self.head["Dense_1"]["bias"]
        q = self.q_mean + self.q_std * out[..., :self.n]
        return q, self.f_scale * F.softplus(out[..., self.n:])

    # ------------------------------------------------------------------ physics
    def _scales(self):
        out = {}
        for k, name in enumerate(physio.PHYSIO_NAMES):
            lo, hi = self.bounds[k, 0], self.bounds[k, 1]
            out[name] = lo + (hi - lo) * torch.sigmoid(self.physio[name])
        out["shape_a"] = -3.0 * torch.sigmoid(self.physio["shape_a"])
        return out

    def _activation(self, window, gain, delay, tau_act, tau_deact):
        """(B, K, M) activation over the window's last K samples (activation.window_activation)."""
        w = window.shape[1]
        k = activation.tail_samples(w, self.rate)
        pos = (torch.arange(w, dtype=torch.float32)[None, :, None]
               - delay[:, None, :] * self.rate).clamp(0.0, w - 1.0)
        i0 = pos.floor().clamp(0, w - 2).long()
        frac = pos - i0
        delayed = (1 - frac) * window.gather(1, i0) + frac * window.gather(1, i0 + 1)
        u = (gain[:, None, :] * delayed).clamp(0.0, 1.0)[:, w - k:]
        dt = 1.0 / self.rate

        def rate(uu, a):
            f = 0.5 * torch.tanh(10.0 * (uu - a))
            kk = 0.5 + 1.5 * a
            return ((f + 0.5) / (tau_act * kk) + kk * (0.5 - f) / tau_deact) * (uu - a)

        a, out = u[:, 0], []
        for t in range(k):
            ut = u[:, t]
            k1 = rate(ut, a)
            k2 = rate(ut, a + 0.5 * dt * k1)
            k3 = rate(ut, a + 0.5 * dt * k2)
            k4 = rate(ut, a + dt * k3)
            a = (a + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)).clamp(0.0, 1.0)
            out.append(a)
        return torch.stack(out, 1)

    def _length(self, q, subj):  # q (B, C, 1) -> l_mt (B, C, M), dl/dq (B, C, M)
        scale = self.g_scale[subj][:, None]
        x = (q - self.g_centre[subj][:, None]) / scale
        e = self.g_exps
        feats = x ** e  # (B, C, K)
        dfeats = torch.where(e > 0, e * x ** (e - 1).clamp(min=0), torch.zeros_like(e)) / scale
        coef = self.g_coef[subj]  # (B, M, K)
        return (torch.einsum("bck,bmk->bcm", feats, coef),
                torch.einsum("bck,bmk->bcm", dfeats, coef))

    def loss_terms(self, batch, tau_c):
        """The 7 mean terms of losses.batch_loss; ``tau_c`` (B, n_colloc) collocation times."""
        emg, q_hist, f_hist, has_f, subj = batch
        hlen = q_hist.shape[1]
        z = self.encode(emg)
        zp = z @ self.head["from_z"]["kernel"] + self.head["from_z"]["bias"]  # (B, hidden)
        taus = -(hlen - 1 - torch.arange(hlen, dtype=torch.float32)) / self.rate
        q_hat, f_hat = self.decode(zp[:, None], taus.expand(len(z), hlen))
        l_q = (((q_hat - q_hist) / self.sigma_q) ** 2).mean((1, 2))
        l_f = has_f * (((f_hat - f_hist) / self.sigma_f) ** 2).mean((1, 2))
        sc = self._scales()
        f_max = self.f_max[subj] * sc["f_max"][subj]
        l_opt = self.l_opt[subj] * sc["l_opt"][subj]
        l_ts = self.l_ts[subj] * sc["l_ts"][subj]
        act = self._activation(emg, sc["emg_gain"][subj], sc["delay_s"][subj],
                               self.tau_act[subj], self.tau_deact[subj])  # (B, K, M)
        # q, q̇, q̈, F, Ḟ at the collocation times by nested forward-mode AD of the head
        zc = zp[:, None].expand(-1, self.n_colloc, -1)
        first = lambda t: torch.func.jvp(lambda tt: self.decode(zc, tt), (t,),
                                         (torch.ones_like(t),))
        ((q, f), (qd, fd)), (_, (qdd, _)) = torch.func.jvp(first, (tau_c,),
                                                          (torch.ones_like(tau_c),))
        sub = subj[:, None]
        tau_pass = -self.damp[sub] * qd - self.stiff[sub] * (q - self.q_rest[sub])
        l_mt, dl = self._length(q, subj)
        ldot = dl * qd
        arms = -dl  # (B, C, M)
        inv = self.inertia[sub] * qdd + self.mgc[sub] * torch.cos(q + self.q_off[sub]) - tau_pass
        res = (inv - (arms * f).sum(-1, keepdim=True)) / self.tau_scale
        k = act.shape[1]
        pos = ((k - 1) + tau_c * self.rate).clamp(0.0, k - 1.0)
        i0 = pos.floor().clamp(0, k - 2).long()
        frac = (pos - i0)[..., None]
        idx = lambda i: i[..., None].expand(-1, -1, act.shape[-1])
        u = (1 - frac) * act.gather(1, idx(i0)) + frac * act.gather(1, idx(i0 + 1))
        shape = sc["shape_a"][subj][:, None]
        small = shape.abs() < 1e-6
        safe = torch.where(small, -torch.ones_like(shape), shape)
        a = torch.where(small, u, torch.expm1(safe * u) / torch.expm1(safe))
        lo, ll, lt = l_opt[:, None], l_ts[:, None], f_max[:, None]
        wdt = lo * torch.sin(self.phi[subj][:, None])
        along = (l_mt - ll).clamp(min=1e-6)
        l_m = torch.sqrt(wdt * wdt + along * along)
        cos_phi = along / l_m
        v_norm = ldot * cos_phi / (self.vmax[subj][:, None] * lo)
        l_norm = l_m / lo
        fl = sum(b1 * torch.exp(-0.5 * (l_norm - b2) ** 2 / (b3 + b4 * l_norm) ** 2)
                 for b1, b2, b3, b4 in muscle._FL_TERMS)
        t = muscle._FV_D2 * v_norm + muscle._FV_D3
        fv = muscle._FV_D1 * torch.log(t + torch.sqrt(t * t + 1.0)) + muscle._FV_D4
        off = math.exp(muscle._PE_KPE * (muscle._PE_MIN_NORM_LENGTH - 1.0) / 0.6)
        fpe = (torch.exp(muscle._PE_KPE * (l_norm - 1.0) / 0.6) - off) / (math.exp(
            muscle._PE_KPE) - off)
        hill = (f - lt * (a * fl * fv + fpe) * cos_phi) / self.sigma_f
        eff = f / self.f_max[subj][:, None]
        terms = torch.stack([l_q, l_f, (res ** 2).mean((1, 2)), (hill ** 2).mean((1, 2)),
                             (eff ** 2).mean((1, 2)), torch.zeros_like(l_q),
                             torch.zeros_like(l_q)], 1)
        mean = terms.mean(0)
        mean = torch.cat([mean[:1], (l_f.sum() / has_f.sum().clamp(min=1.0))[None], mean[2:6],
                          sum((((sc[k] - 1.0) / self.prior_width[i]) ** 2).mean()
                              for i, k in enumerate(("f_max", "l_opt", "l_ts")))[None]])
        return mean

    def data_terms(self, batch):
        emg, q_hist, f_hist, has_f, _ = batch
        hlen = q_hist.shape[1]
        zp = self.encode(emg) @ self.head["from_z"]["kernel"] + self.head["from_z"]["bias"]
        taus = -(hlen - 1 - torch.arange(hlen, dtype=torch.float32)) / self.rate
        q_hat, f_hat = self.decode(zp[:, None], taus.expand(len(zp), hlen))
        l_q = (((q_hat - q_hist) / self.sigma_q) ** 2).mean()
        l_f = (has_f * (((f_hat - f_hist) / self.sigma_f) ** 2).mean((1, 2))).sum() \
            / has_f.sum().clamp(min=1.0)
        return l_q, l_f

    def predict(self, emg):
        zp = self.encode(emg) @ self.head["from_z"]["kernel"] + self.head["from_z"]["bias"]
        return self.decode(zp, torch.zeros(len(zp)))


def _optimizer(twin, cfg, steps):
    opt = torch.optim.Adam(twin.parameters(), lr=cfg.learning_rate)
    warm, total = max(steps // 10, 1), steps

    def lr(i):  # optax.warmup_cosine_decay_schedule(0, lr, warm, total, 0.02 lr)
        if i < warm:
            return i / warm
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(i - warm, total - warm)
                                                 / (total - warm)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr)


def make_step(twin, cfg, weights, physics: bool, steps: int = 1000):
    opt, sched = _optimizer(twin, cfg, steps)
    w = torch.tensor(terms.stack(weights).astype(np.float32))
    named = weights
    params = twin.parameters()

    def step(batch, tau_c):
        opt.zero_grad(set_to_none=True)
        if physics:
            loss = (w * twin.loss_terms(batch, tau_c)).sum()
        else:
            l_q, l_f = twin.data_terms(batch)
            loss = float(named["angle"]) * l_q + float(named["force"]) * l_f
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        return loss

    return step


def _jax_tau_c(state, batch_size: int, consts) -> np.ndarray:
    """The collocation times JAX's step draws from ``state.rng`` (train.make_train_step)."""
    _, sub = jax.random.split(state.rng)
    keys = jax.random.split(sub, batch_size)
    return np.asarray(jax.vmap(lambda k: -consts.horizon_s * jax.random.uniform(
        k, (consts.n_colloc,)))(keys))


def fidelity(prep, cfg, state, batch_np, weights) -> float:
    """Largest relative difference of the 7 loss terms, JAX vs the twin, on one batch."""
    jb = losses.Batch(*(jnp.asarray(a) for a in batch_np))
    _, sub = jax.random.split(state.rng)
    encode, decode = train._fns(prep.net, state.params["net"])
    _, values = losses.batch_loss(encode, decode, prep.data.models, state.params["physio"],
                                  prep.consts, jb, weights, sub, True)
    twin = Twin(prep, cfg, state.params)
    tb = tuple(torch.tensor(np.asarray(a)) for a in batch_np)
    got = twin.loss_terms(tb, torch.tensor(_jax_tau_c(state, len(batch_np[0]), prep.consts)))
    ref = np.asarray(values, np.float64)
    out = got.detach().numpy().astype(np.float64)
    print("loss terms (JAX | PyTorch):")
    for name, a, b in zip(terms.names(), ref, out):
        print(f"  {name:9s} {a: .8e} | {b: .8e}")
    return float(np.max(np.abs(out - ref) / np.maximum(np.abs(ref), 1e-6)))


def main(argv):
    if torch is None:
        raise SystemExit("PyTorch is not installed: pip install torch (or -e \".[bench]\")")
    quick = "--quick" in argv
    rounds = 2 if quick else 6
    torch.set_num_threads(os.cpu_count() or 1)
    data = loading.load_dataset(spec.load_spec(SPEC))
    cfg = train.TrainConfig(batch_size=256)
    prep = prepare.prepare(data, cfg)
    bs = cfg.batch_size
    rng = np.random.default_rng(0)
    w_pi, w_data = terms.run_weights(cfg, 1.0), terms.run_weights(cfg, 0.0)
    tr = prep.train
    idx = rng.permutation(len(tr))[:bs * 8].reshape(8, bs)
    batches = [(tr.emg[i], tr.q[i], tr.forces[i], tr.has_forces[i].astype(np.float32),
                tr.subject[i].astype(np.int64)) for i in idx]
    state0 = prepare.new_state(prep, train.make_optimizer(cfg, 100), 0)
    err = fidelity(prep, cfg, state0, batches[0], w_pi)
    print(f"fidelity: largest relative difference of the 7 loss terms = {err:.2e}")
    if err > 1e-5:
        raise SystemExit("the twin does not match the JAX step to 1e-5; no timing")

    rows = []
    for label, weights, physics in (("PI step (autodiff q̈)", w_pi, True),
                                    ("data-only step", w_data, False)):
        fn, st, dev = _step_program(prep, cfg, weights)
        jidx = jnp.asarray(idx)
        wj = jnp.asarray(weights)
        twin = Twin(prep, cfg, state0.params)
        tstep = make_step(twin, cfg, weights, physics)
        tbs = [tuple(torch.tensor(np.asarray(a)) for a in b) for b in batches]
        tcs = [-prep.consts.horizon_s * torch.rand(bs, prep.consts.n_colloc) for _ in batches]
        variants = {"PyTorch eager": tstep}
        try:
            comp = torch.compile(make_step(Twin(prep, cfg, state0.params), cfg, weights,
                                           physics))
            comp(tbs[0], tcs[0])
            variants["torch.compile"] = comp
        except Exception as e:  # noqa: BLE001 (report why, time the rest)
            print(f"torch.compile failed on the {label}: {type(e).__name__}: "
                  f"{str(e).splitlines()[0][:160]}")
        for i in range(2):
            st, m = fn(st, dev, jidx, i, wj)
            jax.block_until_ready(m)
            tstep(tbs[i], tcs[i])
        times = {"JAX jit": [], **{k: [] for k in variants}}
        for r in range(rounds):
            for j in range(5):
                t0 = time.perf_counter()
                st, m = fn(st, dev, jidx, j % 8, wj)
                jax.block_until_ready(m)
                if j:
                    times["JAX jit"].append(time.perf_counter() - t0)
            for name, f in variants.items():
                for j in range(5):
                    t0 = time.perf_counter()
                    f(tbs[j % 8], tcs[j % 8])
                    if j:
                        times[name].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        for name in variants:
            rows.append({"step": label, "JAX jit windows/s": f"{bs / med['JAX jit']:,.0f}",
                         "PyTorch": name, "PyTorch windows/s": f"{bs / med[name]:,.0f}",
                         "JAX / PyTorch": f"{med[name] / med['JAX jit']:.2f}x"})

    # batch-1 inference latency
    predict = train.make_predict(prep.net)
    x1 = jnp.asarray(tr.emg[:1])
    jax.block_until_ready(predict(state0.params["net"], x1))
    twin = Twin(prep, cfg, state0.params)
    tx1 = torch.tensor(tr.emg[:1])
    lat = {"JAX jit": [], "PyTorch eager": []}
    with torch.no_grad():
        twin.predict(tx1)
        for _ in range(100 if quick else 500):
            t0 = time.perf_counter()
            jax.block_until_ready(predict(state0.params["net"], x1))
            lat["JAX jit"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            twin.predict(tx1)
            lat["PyTorch eager"].append(time.perf_counter() - t0)
    mj, mt = np.median(lat["JAX jit"]), np.median(lat["PyTorch eager"])
    rows.append({"step": "inference, batch 1 (latency)", "JAX jit windows/s": f"{mj * 1e3:.3f} ms",
                 "PyTorch": "PyTorch eager", "PyTorch windows/s": f"{mt * 1e3:.3f} ms",
                 "JAX / PyTorch": f"{mt / mj:.2f}x"})
    print_table(f"JAX vs PyTorch {torch.__version__}, batch {bs} (ratio > 1: JAX faster)", rows)
    out = _flag(argv, "out", os.path.join(ROOT, "benchmarks", "results_pytorch.json"))
    with open(out, "w") as f:
        json.dump({"device": device_name(), "torch": torch.__version__, "fidelity": err,
                   "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
