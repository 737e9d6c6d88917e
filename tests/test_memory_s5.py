"""The S5 core: HiPPO-N init, the resettable operator, parallel = step = a NumPy reference, resets, gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from algos.networks import recurrent_policy
from memory import S5, make_core
from memory.s5 import (
    discretize_bilinear,
    discretize_zoh,
    hippo_n_init,
    linear_recurrence_parallel,
    linear_recurrence_step,
    make_dplr_hippo,
    make_hippo_legs,
    make_normal_hippo,
    reset_operator,
)

RTOL = 1e-5

# (name, options): the paper's POPGym configuration at full size, and a small one with every option turned
CONFIGS = {
    "paper": dict(d_model=256, ssm_size=256, n_layers=4),
    "options": dict(d_model=12, ssm_size=10, n_layers=2, conj_sym=False, activation="half_glu2",
                    prenorm=True, do_norm=True, gtrxl_norm=True, discretization="bilinear",
                    C_init="trunc_standard_normal", clip_eigs=True, step_rescale=2.0, input_proj=True),
    "small": dict(d_model=12, ssm_size=16, n_layers=2, activation="half_glu1", do_norm=True,
                  C_init="complex_normal", dt_min=0.01, dt_max=0.5),
}


def rel_err(a, ref) -> float:
    a, ref = np.asarray(a), np.asarray(ref)
    return float(np.max(np.abs(a - ref)) / np.max(np.abs(ref)))


def assert_close(a, ref, rtol=RTOL):
    err = rel_err(a, ref)
    assert err <= rtol, f"relative error {err:.3g} > {rtol:g}"


# ---------------------------------------------------------------------------------------------
# A plain NumPy (float64) one-step-at-a-time reference of the whole stack


def _np_gelu(x):  # flax's nn.gelu (tanh approximation)
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def _np_layernorm(x, p):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def _np_dense(x, p):
    return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_s5(core: S5, params, carry, x, reset):
    """x_k = Λ̄ x_{k−1}(1 − d_k) + B̄u_k, one time step (all layers) after another, in float64.

    Λ̄ and B̄ come from the module's float32 discretisation (checked on its own in
    :func:`test_discretizations`): at the full HiPPO-N size |Im(Λ)|Δ reaches ~900 rad, where float32
    rounding of ΛΔ alone moves the phase of exp(ΛΔ) by ~5e-5 a step, which a float64 Λ̄ would compound
    into differences far above 1e-5 over a sequence wherever the initial carry persists.
    """
    params64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
    layers = []
    for i in range(core.n_layers):
        s32 = params["params"][f"layer_{i}"]["ssm"]
        lam_re = jnp.minimum(s32["Lambda_re"], -1e-4) if core.clip_eigs else s32["Lambda_re"]
        lam = jax.lax.complex(lam_re, s32["Lambda_im"])
        b_tilde = jax.lax.complex(s32["B"][..., 0], s32["B"][..., 1])
        delta = core.step_rescale * jnp.exp(s32["log_step"])
        discretize = discretize_zoh if core.discretization == "zoh" else discretize_bilinear
        lam_bar, b_bar = (np.asarray(a, np.complex128) for a in discretize(lam, b_tilde, delta))
        s = params64[f"layer_{i}"]["ssm"]
        layers.append((lam_bar, b_bar, s["C"][..., 0] + 1j * s["C"][..., 1], s["D"], params64[f"layer_{i}"]))
    params = params64
    hs = [np.asarray(c, np.complex128) for c in carry]
    x, reset = np.asarray(x, np.float64), np.asarray(reset, bool)
    ys = []
    for t in range(x.shape[0]):
        u = x[t]
        if "input_proj" in params:
            u = _np_dense(u, params["input_proj"])
        for i, (lam_bar, b_bar, c_tilde, d, lp) in enumerate(layers):
            skip = u
            if core.prenorm and core.do_norm:
                u = _np_layernorm(u, lp["LayerNorm_0"])
            h = np.where(reset[t][:, None], 0.0, hs[i])
            h = lam_bar * h + u @ b_bar.T
            hs[i] = h
            y = (h @ c_tilde.T).real * (2.0 if core.conj_sym else 1.0) + d * u
            if core.gtrxl_norm:
                y = _np_layernorm(y, lp["LayerNorm_0"])
            if core.activation == "full_glu":
                z = _np_gelu(y)
                y = _np_dense(z, lp["out1"]) * _sigmoid(_np_dense(z, lp["out2"]))
            elif core.activation == "half_glu1":
                z = _np_gelu(y)
                y = z * _sigmoid(_np_dense(z, lp["out2"]))
            elif core.activation == "half_glu2":
                y = y * _sigmoid(_np_dense(_np_gelu(y), lp["out2"]))
            else:
                y = _np_gelu(y)
            u = skip + y
            if core.do_norm and not core.prenorm:
                u = _np_layernorm(u, lp["LayerNorm_0"])
        ys.append(u)
    return tuple(hs), np.stack(ys)


def make_inputs(seed, T, B, F, P, n_layers):
    """Inputs, resets (b=0: reset at t=0; b=1: none at t=0, so the initial carry matters; b=B-1: a run of
    resets around T/2), and a random non-zero initial carry (NumPy: nothing to compile)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, B, F)).astype(np.float32)
    reset = rng.random((T, B)) < 0.08
    reset[0, 0], reset[0, 1] = True, False
    reset[T // 2 - 2:T // 2 + 2, B - 1] = True
    reset[T - 1, 0] = True
    carry = tuple((rng.normal(size=(B, P)) + 1j * rng.normal(size=(B, P))).astype(np.complex64)
                  for _ in range(n_layers))
    return x, reset, carry


T, B = 36, 3  # one shape for every test of a configuration, so that compiled functions are shared


@functools.cache
def setup(config: str):
    """(core, params, x, reset, carry) of a configuration; compiled once per test session."""
    core = S5(**CONFIGS[config])
    F = 7 if core.input_proj else core.d_model
    x, reset, carry = make_inputs(1, T, B, F, core.state_size, core.n_layers)
    params = jax.jit(core.init)(jax.random.PRNGKey(2), core.initial_carry(B), (x[:1], reset[:1]))
    return core, params, x, reset, carry


@functools.cache
def jitted_apply(config: str, mode: str):
    return jax.jit(S5(**CONFIGS[config], mode=mode).apply)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_parallel_equals_step_equals_numpy(config):
    core, params, x, reset, carry = setup(config)
    apply_par, apply_step = jitted_apply(config, "parallel"), jitted_apply(config, "step")

    c_par, y_par = apply_par(params, carry, (x, reset))
    c_step, y_step = apply_step(params, carry, (x, reset))
    c_np, y_np = numpy_s5(core, params, carry, x, reset)
    assert y_par.shape == (T, B, core.d_model) and y_par.dtype == jnp.float32
    assert all(c.shape == (B, core.state_size) and c.dtype == jnp.complex64 for c in c_par)
    assert_close(y_par, y_step)
    assert_close(y_par, y_np)
    assert_close(y_step, y_np)
    for cp, cs, cn in zip(c_par, c_step, c_np):
        assert_close(cp, cs)
        assert_close(cp, cn)
    if config == "paper":
        return  # (the splits below compile the full-size stack again; the small configurations check them)
    # the sequence in two calls, the carry passed through (for b = B-1 the split is inside a run of resets)
    k = T // 2
    c1, y1 = apply_par(params, carry, (x[:k], reset[:k]))
    c2, y2 = apply_par(params, c1, (x[k:], reset[k:]))
    assert_close(jnp.concatenate([y1, y2]), y_np)
    for a, b in zip(c2, c_np):
        assert_close(a, b)
    # one step at a time through the parallel form (acting: sequences of length 1)
    if config == "small":
        c, ys = carry, []
        for t in range(T):
            c, y = apply_par(params, c, (x[t:t + 1], reset[t:t + 1]))
            ys.append(y[0])
        assert_close(jnp.stack(ys), y_np)
        for a, b in zip(c, c_np):
            assert_close(a, b)


@pytest.mark.parametrize("mode", ["parallel", "step"])
def test_reset_makes_output_independent_of_the_past(mode):
    core, params, x, _, carry = setup("small")
    apply = jitted_apply("small", mode)
    t0 = T // 2
    reset = np.zeros((T, B), bool)
    reset[t0] = True
    x_other = x.copy()
    x_other[:t0] = 3.0 * np.random.default_rng(5).normal(size=x[:t0].shape)
    carry_other = tuple(2.0 * c[::-1] + 1.0 for c in carry)

    _, y = apply(params, carry, (x, reset))
    _, y_other = apply(params, carry_other, (x_other, reset))
    np.testing.assert_allclose(y_other[t0:], y[t0:], rtol=1e-6, atol=1e-6)
    _, y_fresh = apply(params, core.initial_carry(B), (x[t0:], reset[t0:]))  # a new sequence from t0
    np.testing.assert_allclose(y_fresh, y[t0:], rtol=1e-6, atol=1e-6)
    # without the reset the past does reach the outputs (so the checks above can fail)
    no_reset = np.zeros_like(reset)
    _, y_nr = apply(params, carry, (x, no_reset))
    _, y_nr_other = apply(params, carry_other, (x_other, no_reset))
    assert rel_err(y_nr_other[t0:], y_nr[t0:]) > 1e-2
    assert rel_err(y_nr[t0:], y[t0:]) > 1e-3


def test_hippo_n_properties():
    for n in (8, 64, 256):
        a = make_hippo_legs(n)
        assert np.allclose(np.triu(a, 1), 0) and np.allclose(np.diag(a), -(np.arange(n) + 1))
        assert np.isclose(a[3, 1], -np.sqrt(7) * np.sqrt(3))
        s, p = make_normal_hippo(n)
        np.testing.assert_allclose(s, a + np.outer(p, p))
        np.testing.assert_allclose(s @ s.T, s.T @ s, atol=1e-9 * np.abs(s).max() ** 2)  # S is normal
        np.testing.assert_allclose(np.diag(s), -0.5, atol=1e-12)
        np.testing.assert_allclose(s - np.diag(np.diag(s)), -(s - np.diag(np.diag(s))).T, atol=1e-12)
        lam, v = make_dplr_hippo(n)
        assert np.all(lam.real == -0.5)  # exactly
        assert np.all(np.diff(lam.imag) > 0)  # ascending, distinct
        np.testing.assert_allclose(lam.imag, -lam.imag[::-1], atol=1e-9 * n)  # conjugate pairs
        np.testing.assert_allclose(v.conj().T @ v, np.eye(n), atol=1e-10)  # V unitary
        np.testing.assert_allclose(s @ v, v * lam, atol=1e-9 * n)  # S V = V diag(Λ)
        eigvals = np.linalg.eigvals(s)  # a general (non-Hermitian) solver agrees
        np.testing.assert_allclose(eigvals[np.argsort(eigvals.imag)], lam, atol=1e-8 * n)

        lam_h, v_h, vinv_h = hippo_n_init(n, conj_sym=True)
        assert lam_h.shape == (n // 2,) and v_h.shape == (n, n // 2) and vinv_h.shape == (n // 2, n)
        assert np.all(lam_h.imag < 0)  # the first half in ascending order
        np.testing.assert_allclose(vinv_h, v_h.conj().T)
        np.testing.assert_allclose(vinv_h @ v_h, np.eye(n // 2), atol=1e-10)
        # conjugate symmetry: the half system's 2·Re(...) is the full real system's output
        rng = np.random.default_rng(n)
        b, c, delta = rng.normal(size=(n, 3)), rng.normal(size=(2, n)), 0.05
        full = c @ v @ np.diag(np.exp(lam * delta)) @ v.conj().T @ b
        half = 2 * (c @ v_h @ np.diag(np.exp(lam_h * delta)) @ vinv_h @ b).real
        np.testing.assert_allclose(np.abs(full.imag), 0, atol=1e-9)
        np.testing.assert_allclose(half, full.real, atol=1e-9)
        np.testing.assert_allclose(half, c @ scipy.linalg.expm(s * delta) @ b, atol=1e-8)
        lam_f, v_f, vinv_f = hippo_n_init(n, conj_sym=False)
        np.testing.assert_allclose(lam_f, lam)
        np.testing.assert_allclose(vinv_f @ v_f, np.eye(n), atol=1e-10)


def test_s5_init_matches_the_reference_parameterisation():
    core, params, *_ = setup("small")  # d_model 12, ssm_size 16 -> P = 8
    s = params["params"]["layer_0"]["ssm"]
    lam, v, vinv = hippo_n_init(16, True)
    np.testing.assert_array_equal(s["Lambda_re"], -0.5)
    np.testing.assert_allclose(s["Lambda_im"], lam.imag, rtol=1e-6)
    assert s["B"].shape == (8, 12, 2) and s["C"].shape == (12, 8, 2) and s["D"].shape == (12,)
    # B̃ = V⁻¹B for a real B: with conjugate pairs V V⁻¹ + conj(V V⁻¹) = I, so B = 2 Re(V B̃)
    b_tilde = np.asarray(s["B"][..., 0] + 1j * s["B"][..., 1], np.complex128)
    b_real = 2 * (v @ b_tilde).real
    np.testing.assert_allclose(vinv @ b_real, b_tilde, atol=1e-6)
    log_step = np.asarray(s["log_step"])
    assert log_step.shape == (8,) and np.all(log_step >= np.log(0.01)) and np.all(log_step <= np.log(0.5))
    assert "input_proj" not in params["params"]  # F == d_model: no input Dense, as in the reference


def test_discretizations():
    lam = jnp.asarray(np.array([-0.5 + 3j, -0.5 - 0.2j, -0.5 + 0j]), jnp.complex64)
    b = jnp.asarray(np.array([[1.0 + 0.5j], [0.3 - 1j], [2.0 + 0j]]), jnp.complex64)
    delta = jnp.array([0.01, 0.1, 0.5])
    lam_bar, b_bar = discretize_zoh(lam, b, delta)
    for k in range(3):  # ZOH = exp of the augmented generator [[λ, b], [0, 0]] Δ
        m = scipy.linalg.expm(np.array([[complex(lam[k]), complex(b[k, 0])], [0, 0]]) * float(delta[k]))
        np.testing.assert_allclose(complex(lam_bar[k]), m[0, 0], rtol=1e-6)
        np.testing.assert_allclose(complex(b_bar[k, 0]), m[0, 1], rtol=1e-5)
    lam_bl, b_bl = discretize_bilinear(lam, b, delta)
    np.testing.assert_allclose(lam_bl, (1 + delta * lam / 2) / (1 - delta * lam / 2), rtol=1e-6)
    np.testing.assert_allclose(lam_bl[:1], lam_bar[:1], rtol=1e-5)  # same to O(Δ³) for small Δ
    assert np.all(np.abs(lam_bl) < 1) and np.all(np.abs(lam_bar) < 1)
    # at the full HiPPO-N size, float32 ZOH is as close to float64 as the rounding of ΛΔ allows
    lam, _, _ = hippo_n_init(256)
    delta = np.geomspace(0.001, 0.1, 128)
    b = np.ones((128, 1))
    lam_bar32, b_bar32 = discretize_zoh(jnp.asarray(lam, jnp.complex64), jnp.asarray(b, jnp.complex64),
                                        jnp.asarray(delta, jnp.float32))
    lam_bar64 = np.exp(lam * delta)
    bound = 4 * np.finfo(np.float32).eps * (1 + np.abs(lam * delta))
    assert np.all(np.abs(np.asarray(lam_bar32) - lam_bar64) <= bound)
    b_bar64 = (lam_bar64 - 1) / lam
    assert np.all(np.abs(np.asarray(b_bar32[:, 0]) - b_bar64) <= bound * np.abs(1 / lam) + 1e-7 * np.abs(b_bar64))


def test_reset_operator_is_associative():
    rng = np.random.default_rng(0)
    n = 64

    def element():
        a = rng.normal(size=n) + 1j * rng.normal(size=n)
        b = rng.normal(size=n) + 1j * rng.normal(size=n)
        return jnp.asarray(a, jnp.complex64), jnp.asarray(b, jnp.complex64), jnp.asarray(rng.random(n) < 0.5)

    op = jax.jit(reset_operator)
    for _ in range(4):  # random flags per position cover all 8 flag patterns of (x, y, z)
        x, y, z = element(), element(), element()
        left, right = op(op(x, y), z), op(x, op(y, z))
        for l_, r_ in zip(left, right):
            np.testing.assert_allclose(l_, r_, rtol=1e-5, atol=1e-5)
    # the semantics: a later reset discards the earlier element; no reset composes the linear maps
    x, y = element(), element()
    a, b, c = op(x, y)
    yc = np.asarray(y[2])
    np.testing.assert_allclose(a, np.where(yc, y[0], y[0] * x[0]), rtol=1e-6)
    np.testing.assert_allclose(b, np.where(yc, y[1], y[0] * x[1] + y[1]), rtol=1e-6)
    np.testing.assert_array_equal(c, np.asarray(x[2]) | yc)


def test_linear_recurrences_agree_on_a_long_sequence():
    T, B, P = 257, 2, 8
    rng = np.random.default_rng(6)
    lam_bar = np.exp((-0.5 + 1j * rng.normal(size=P)) * 0.01).astype(np.complex64)
    bu = (rng.normal(size=(T, B, P)) + 1j * rng.normal(size=(T, B, P))).astype(np.complex64)
    reset = rng.random((T, B)) < 0.04
    reset[0, 0] = True
    h0 = np.ones((B, P), np.complex64)
    xs_par = jax.jit(linear_recurrence_parallel)(lam_bar, bu, reset, h0)
    xs_step = jax.jit(linear_recurrence_step)(lam_bar, bu, reset, h0)
    h, ref = np.asarray(h0, np.complex128), []
    lb, bun, r = np.asarray(lam_bar, np.complex128), np.asarray(bu, np.complex128), np.asarray(reset)
    for t in range(T):
        h = lb * np.where(r[t][:, None], 0, h) + bun[t]
        ref.append(h)
    assert_close(xs_par, np.stack(ref), rtol=2e-5)
    assert_close(xs_step, np.stack(ref), rtol=2e-5)


def test_gradients_flow_and_are_finite_through_the_parallel_form():
    _, params, x, reset, carry = setup("small")
    apply = jitted_apply("small", "parallel")

    def loss(params, x):
        c, y = apply(params, carry, (x, reset))
        return jnp.mean(y**2) + sum(jnp.mean(jnp.abs(h) ** 2) for h in c)

    g, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    for path, leaf in jax.tree_util.tree_flatten_with_path(g)[0]:
        assert np.all(np.isfinite(leaf)), path
        assert np.any(leaf != 0), path
    assert np.all(np.isfinite(gx)) and np.any(gx[0] != 0)  # reaches the first input through the scan
    # a central finite difference along a random direction agrees with the gradient (host arithmetic:
    # only the already compiled forward runs on the device)
    def loss_host(params):
        c, y = apply(params, carry, (x, reset))
        return np.mean(np.asarray(y, np.float64) ** 2) + sum(np.mean(np.abs(np.asarray(h, np.complex128)) ** 2)
                                                             for h in c)

    rng = np.random.default_rng(9)
    direction = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(np.float32), params)
    eps = 1e-3
    shifted = lambda sign: jax.tree.map(lambda p, d: np.asarray(p) + np.float32(sign * eps) * d, params, direction)
    fd = (loss_host(shifted(1)) - loss_host(shifted(-1))) / (2 * eps)
    analytic = sum(float(np.vdot(np.asarray(a, np.float64), d))
                   for a, d in zip(jax.tree.leaves(g), jax.tree.leaves(direction)))
    assert abs(fd - analytic) <= 1e-2 * abs(analytic), (fd, analytic)


def test_registry_and_policy_integration():
    core = make_core("s5", 32, ssm_size=16, n_layers=2)
    assert isinstance(core, S5) and core.d_model == 32 and core.state_size == 8
    with pytest.raises(ValueError, match="gru.*lstm.*s5"):
        make_core("transformer", 32)
    policy = recurrent_policy(core, action_dim=3, discrete=True, encoder=(24,))  # 24 != 32: input_proj
    obs = jnp.ones((4, 5))
    params = jax.eval_shape(policy.init, jax.random.PRNGKey(0), obs, jnp.zeros((4, 1)))  # traced, not compiled
    assert params["params"]["core"]["input_proj"]["kernel"].shape == (24, 32)
    carry, _, value = jax.eval_shape(lambda p, c: policy.apply(p, c, obs[None], jnp.ones((1, 4), bool), None),
                                     params, policy.initial_carry(4))
    assert value.shape == (1, 4) and len(carry) == 2 and carry[0].dtype == jnp.complex64
    assert carry[0].shape == (4, 8)
    bad = S5(d_model=32, ssm_size=16, n_layers=1, input_proj=False)
    with pytest.raises(ValueError, match="input_proj"):
        jax.eval_shape(bad.init, jax.random.PRNGKey(0), bad.initial_carry(2),
                       (jnp.ones((1, 2, 24)), jnp.zeros((1, 2), bool)))
    with pytest.raises(ValueError, match="mode"):
        bad = S5(d_model=8, ssm_size=8, n_layers=1, mode="fast")
        jax.eval_shape(bad.init, jax.random.PRNGKey(0), bad.initial_carry(2),
                       (jnp.ones((1, 2, 8)), jnp.zeros((1, 2), bool)))
