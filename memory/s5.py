"""An S5 core (stacked diagonal linear state-space layers) with resettable parallel scans.

S5: Smith, Warrington & Linderman, "Simplified State Space Layers for Sequence Modeling", ICLR 2023
(code ``lindermanlab/S5``, ``s5/ssm.py`` and ``s5/ssm_init.py``). Resets: Lu, Schroecker, Gu, Parisotto,
Foerster, Singh & Behbahani, "Structured State Space Models for In-Context Reinforcement Learning",
NeurIPS 2023 (code ``luchris429/popjaxrl``, ``algorithms/s5.py``). The defaults are the configuration of
that paper's POPGym experiments: 4 layers, d_model H = 256, ssm_size 256 with conjugate symmetry
(P = 128 complex states per layer), ``full_glu``, no layer norms, ZOH, Δ ∈ [0.001, 0.1].

    core(carry, (x [T, B, F], reset [T, B])) -> (carry, y [T, B, H]),  carry = n_layers arrays [B, P] complex64

Per layer, a continuous-time diagonal SSM ẋ = Λx + B̃u, y = C̃x + Du (Λ ∈ ℂ^P, B̃ ∈ ℂ^{P×H}, C̃ ∈ ℂ^{H×P},
D ∈ ℝ^H), discretised per state with a learnt step Δ = step_rescale · exp(log Δ):

    ZOH:       Λ̄ = exp(ΛΔ),                  B̄ = ((Λ̄ − 1) / Λ) ⊙ B̃
    bilinear:  Λ̄ = (1 − ΔΛ/2)⁻¹ (1 + ΔΛ/2),  B̄ = (1 − ΔΛ/2)⁻¹ Δ ⊙ B̃

    x_k = Λ̄ ⊙ x_{k−1} · (1 − d_k) + B̄ u_k,   y_k = 2·Re(C̃ x_k) + D ⊙ u_k   (Re(C̃ x_k) without conj_sym)

where d_k is the reset flag: x[k] starts a new sequence, so the carry is dropped *before* u_k is added
(the same convention as every core in ``memory/``).

HiPPO-N initialisation (``make_DPLR_HiPPO``): HiPPO-LegS A (A_nk = −√(2n+1)√(2k+1) for n > k,
A_nn = −(n+1), 0 above the diagonal) plus p pᵀ with p_n = √(n+½) is the normal matrix
S = −½ I + K, K skew-symmetric. Λ = −½ + i·eig(−iK) (a Hermitian eigendecomposition, ascending), V its
eigenvectors. With conj_sym the first ssm_size/2 (ascending: negative imaginary parts) are kept, V ∈
ℂ^{ssm_size×P}, V⁻¹ := Vᴴ. B ∈ ℝ^{ssm_size×H} is drawn LeCun-normal at full size and B̃ = V⁻¹B; C is
complex ℂ^{H×ssm_size} (LeCun-normal on an (H, ssm_size, 2) real tensor) and C̃ = C V; D ~ N(0, 1);
log Δ ~ U[log dt_min, log dt_max] per state. Λ (real and imaginary parts), B̃, C̃ (as real/imag pairs),
D and log Δ are trained. (Re(Λ) is set to −½ exactly; the reference takes the mean of S's diagonal, −½ up to
rounding. At ssm_size 256, |Im(Λ)| reaches 2.1e4, so |Im(Λ)|Δ reaches ~2e3 rad: in float32 the phase of
those modes' Λ̄ is only good to ~1e-4 a step, in the reference as here.)

Two ways to run the recurrence, with the same answer (``mode``):

- ``"parallel"``: ``jax.lax.associative_scan`` over elements e_k = (Λ̄, B̄u_k, d_k) with the resettable
  operator of Lu et al. (element i earlier, j later)

      (a_i, b_i, c_i) ⊕ (a_j, b_j, c_j) = (a_j a_i, a_j b_i + b_j, c_i)   if c_j = 0
                                        = (a_j, b_j, 1)                   if c_j = 1

  with (1, x_0, 0) prepended for the carried state and dropped afterwards; the b-components are x_1..x_T.
- ``"step"``: ``jax.lax.scan`` applying x_k = Λ̄ x_{k−1}(1 − d_k) + B̄u_k one step at a time.

Each layer (popjaxrl's ``SequenceLayer``): skip = x; LayerNorm if ``prenorm and do_norm``; SSM;
LayerNorm if ``gtrxl_norm``; activation; x = skip + x; LayerNorm if ``do_norm and not prenorm``. As in the
reference, the three norms of a layer are one LayerNorm (shared parameters). Activations: ``full_glu``
(z = GELU(y), Dense(z) ⊙ σ(Dense'(z))), ``half_glu1`` (z ⊙ σ(Dense(z))), ``half_glu2`` (y ⊙ σ(Dense(GELU(y)))),
``gelu``. GELU is flax's default (tanh approximation), as in the reference.

The reference stack has no input projection: its encoder's last Dense is already d_model wide. Here
``input_proj=None`` (default) adds a Dense(d_model) only when F ≠ d_model; ``True`` always, ``False``
never (an F ≠ d_model input is then an error). Only J = 1 block (the reference's only working setting);
no bidirectional variant.
"""

from __future__ import annotations

import functools
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = ("full_glu", "half_glu1", "half_glu2", "gelu")
DISCRETIZATIONS = ("zoh", "bilinear")
C_INITS = ("lecun_normal", "trunc_standard_normal", "complex_normal")
MODES = ("parallel", "step")


# --------------------------------------------------------------------------------------------------
# HiPPO-N initialisation (float64 NumPy, computed once per size)


def make_hippo_legs(n: int) -> np.ndarray:
    """HiPPO-LegS state matrix A [n, n]: −√(2n+1)√(2k+1) below the diagonal, −(n+1) on it, 0 above."""
    q = np.sqrt(2.0 * np.arange(n) + 1.0)
    return -(np.tril(np.outer(q, q)) - np.diag(np.arange(n, dtype=np.float64)))


def make_normal_hippo(n: int) -> tuple[np.ndarray, np.ndarray]:
    """S = A + p pᵀ (p_n = √(n+½)), the normal part of HiPPO-LegS, and p."""
    p = np.sqrt(np.arange(n) + 0.5)
    return make_hippo_legs(n) + np.outer(p, p), p


def make_dplr_hippo(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues Λ [n] and unitary eigenvectors V [n, n] of S (HiPPO-N), Λ sorted by ascending Im.

    Re(Λ) is the mean of S's (constant, −½) diagonal; Im(Λ) and V come from the Hermitian
    eigendecomposition of −iK, K = (S − Sᵀ)/2 the skew part of S. This is what the reference's
    ``eigh(S * -1j)`` computes (``jnp.linalg.eigh`` symmetrises its input to (M + Mᴴ)/2 = −iK; LAPACK reads
    one triangle, the same matrix), here in float64.
    """
    s, _ = make_normal_hippo(n)
    lambda_real = np.full(n, -0.5)  # S's diagonal, −½ analytically (the reference: its mean, −½ to rounding)
    lambda_imag, v = np.linalg.eigh(-1j * (s - s.T) / 2.0)
    return lambda_real + 1j * lambda_imag, v


@functools.lru_cache(maxsize=16)
def hippo_n_init(ssm_size: int, conj_sym: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Λ [P], V [ssm_size, P], V⁻¹ [P, ssm_size]) for one S5 layer; P = ssm_size // 2 with ``conj_sym``.

    With ``conj_sym`` the first half (negative imaginary parts; the dropped half are their conjugates) is
    kept, as in popjaxrl ``ppo_s5.py`` / S5 ``train.py``; V⁻¹ = Vᴴ in both cases (V is unitary).
    The arrays are read-only (cached).
    """
    if conj_sym and ssm_size % 2:
        raise ValueError(f"conj_sym needs an even ssm_size, got {ssm_size}")
    lam, v = make_dplr_hippo(ssm_size)
    if conj_sym:
        lam, v = lam[: ssm_size // 2], v[:, : ssm_size // 2]
    vinv = v.conj().T
    for a in (lam, v, vinv):
        a.setflags(write=False)
    return lam, v, vinv


# --------------------------------------------------------------------------------------------------
# Discretisation and the recurrence


def discretize_zoh(lam: jax.Array, b_tilde: jax.Array, delta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Zero-order hold: Λ̄ = exp(ΛΔ), B̄ = ((Λ̄ − 1)/Λ) ⊙ B̃ (Λ, Δ [P]; B̃ [P, H])."""
    lam_bar = jnp.exp(lam * delta)
    return lam_bar, ((lam_bar - 1.0) / lam)[:, None] * b_tilde


def discretize_bilinear(lam: jax.Array, b_tilde: jax.Array, delta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Bilinear (Tustin): Λ̄ = (1 − ΔΛ/2)⁻¹(1 + ΔΛ/2), B̄ = (1 − ΔΛ/2)⁻¹ Δ ⊙ B̃."""
    bl = 1.0 / (1.0 - (delta / 2.0) * lam)
    return bl * (1.0 + (delta / 2.0) * lam), (bl * delta)[:, None] * b_tilde


def reset_operator(e_i, e_j):
    """The resettable associative operator ⊕ of Lu et al. (2023) on (a, b, c) elements, i before j.

    ``c`` is a boolean reset flag broadcastable against ``a`` and ``b``: where ``c_j`` is set the result is
    ``e_j`` with the flag kept, else ``(a_j a_i, a_j b_i + b_j, c_i)``.
    """
    a_i, b_i, c_i = e_i
    a_j, b_j, c_j = e_j
    return (jnp.where(c_j, a_j, a_j * a_i), jnp.where(c_j, b_j, a_j * b_i + b_j), jnp.logical_or(c_i, c_j))


def linear_recurrence_parallel(lam_bar: jax.Array, bu: jax.Array, reset: jax.Array, h0: jax.Array) -> jax.Array:
    """States x_1..x_T [T, B, P] of x_k = Λ̄ x_{k−1}(1 − d_k) + bu_k from x_0 = h0 [B, P], by an
    associative scan with :func:`reset_operator` over (1, h0, 0), (Λ̄, bu_1, d_1), ..."""
    t, b, p = bu.shape
    a = jnp.broadcast_to(lam_bar.astype(bu.dtype), (t + 1, b, p)).at[0].set(1.0)
    bs = jnp.concatenate([h0[None].astype(bu.dtype), bu])
    c = jnp.concatenate([jnp.zeros((1, b), bool), reset.astype(bool)])[..., None]
    _, xs, _ = jax.lax.associative_scan(reset_operator, (a, bs, c))
    return xs[1:]


def linear_recurrence_step(lam_bar: jax.Array, bu: jax.Array, reset: jax.Array, h0: jax.Array) -> jax.Array:
    """The same states as :func:`linear_recurrence_parallel`, one step at a time (``lax.scan``)."""

    def step(h, xs):
        bu_k, d_k = xs
        h = lam_bar * jnp.where(d_k[:, None], jnp.zeros_like(h), h) + bu_k
        return h, h

    _, xs = jax.lax.scan(step, h0.astype(bu.dtype), (bu, reset.astype(bool)))
    return xs


# --------------------------------------------------------------------------------------------------
# Modules


def _stack_re_im(z: jax.Array) -> jax.Array:
    return jnp.stack([z.real, z.imag], axis=-1)


class S5SSM(nn.Module):
    """One diagonal SSM over time-major inputs: ``(h0 [B, P], u [T, B, H], reset [T, B]) -> (h_T, y [T, B, H])``."""

    d_model: int
    ssm_size: int = 256
    conj_sym: bool = True
    discretization: Literal["zoh", "bilinear"] = "zoh"
    C_init: Literal["lecun_normal", "trunc_standard_normal", "complex_normal"] = "lecun_normal"
    dt_min: float = 0.001
    dt_max: float = 0.1
    step_rescale: float = 1.0
    clip_eigs: bool = False
    mode: Literal["parallel", "step"] = "parallel"

    @property
    def state_size(self) -> int:
        return self.ssm_size // 2 if self.conj_sym else self.ssm_size

    @nn.compact
    def __call__(self, h0: jax.Array, u: jax.Array, reset: jax.Array):
        h, n_full, p = self.d_model, self.ssm_size, self.state_size
        lam0, v, vinv = hippo_n_init(n_full, self.conj_sym)

        lambda_re = self.param("Lambda_re", lambda _k: jnp.asarray(lam0.real, jnp.float32))
        lambda_im = self.param("Lambda_im", lambda _k: jnp.asarray(lam0.imag, jnp.float32))
        if self.clip_eigs:
            lambda_re = jnp.minimum(lambda_re, -1e-4)
        lam = jax.lax.complex(lambda_re, lambda_im)

        def b_init(key):  # B real [ssm_size, H] at full size, then B̃ = V⁻¹ B
            b = jax.nn.initializers.lecun_normal()(key, (n_full, h))
            return _stack_re_im(jnp.asarray(vinv, jnp.complex64) @ b.astype(jnp.complex64))

        def c_init(key):  # C complex [H, ssm_size], then C̃ = C V (complex_normal: C̃ drawn directly)
            if self.C_init == "complex_normal":
                return jax.nn.initializers.normal(stddev=0.5**0.5)(key, (h, p, 2))
            if self.C_init == "lecun_normal":
                c = jax.nn.initializers.lecun_normal()(key, (h, n_full, 2))
            else:  # popjaxrl's trunc_standard_normal: LeCun-normal row by row (fan-in ssm_size)
                c = jax.nn.initializers.lecun_normal(batch_axis=0)(key, (h, n_full, 2))
            return _stack_re_im(jax.lax.complex(c[..., 0], c[..., 1]) @ jnp.asarray(v, jnp.complex64))

        def log_step_init(key):
            lo, hi = np.log(self.dt_min), np.log(self.dt_max)
            return jax.random.uniform(key, (p,), jnp.float32) * (hi - lo) + lo

        b_param = self.param("B", b_init)
        c_param = self.param("C", c_init)
        d = self.param("D", jax.nn.initializers.normal(stddev=1.0), (h,))
        log_step = self.param("log_step", log_step_init)

        b_tilde = jax.lax.complex(b_param[..., 0], b_param[..., 1])  # [P, H]
        delta = self.step_rescale * jnp.exp(log_step)
        if self.discretization == "zoh":
            lam_bar, b_bar = discretize_zoh(lam, b_tilde, delta)
        elif self.discretization == "bilinear":
            lam_bar, b_bar = discretize_bilinear(lam, b_tilde, delta)
        else:
            raise ValueError(f"unknown discretization {self.discretization!r}; known: {DISCRETIZATIONS}")

        u = u.astype(jnp.float32)
        bu = jax.lax.complex(u @ b_bar.real.T, u @ b_bar.imag.T)  # [T, B, P]
        if self.mode == "parallel":
            xs = linear_recurrence_parallel(lam_bar, bu, reset, h0)
        elif self.mode == "step":
            xs = linear_recurrence_step(lam_bar, bu, reset, h0)
        else:
            raise ValueError(f"unknown mode {self.mode!r}; known: {MODES}")
        c_re, c_im = c_param[..., 0], c_param[..., 1]  # C̃ [H, P]
        y = xs.real @ c_re.T - xs.imag @ c_im.T  # Re(C̃ x)
        if self.conj_sym:
            y = 2.0 * y
        return xs[-1], y + d * u


class SequenceLayer(nn.Module):
    """One S5 layer: (norm) -> SSM -> (GTrXL norm) -> activation -> residual -> (post-norm)."""

    ssm: S5SSM
    activation: str = "full_glu"
    prenorm: bool = False
    do_norm: bool = False
    gtrxl_norm: bool = False

    @nn.compact
    def __call__(self, h0: jax.Array, x: jax.Array, reset: jax.Array):
        h = self.ssm.d_model
        norm = nn.LayerNorm()  # one LayerNorm for all three places, as in the reference
        skip = x
        if self.prenorm and self.do_norm:
            x = norm(x)
        h_new, x = self.ssm(h0, x, reset)
        if self.gtrxl_norm:
            x = norm(x)
        if self.activation == "full_glu":
            x = nn.gelu(x)
            x = nn.Dense(h, name="out1")(x) * jax.nn.sigmoid(nn.Dense(h, name="out2")(x))
        elif self.activation == "half_glu1":
            x = nn.gelu(x)
            x = x * jax.nn.sigmoid(nn.Dense(h, name="out2")(x))
        elif self.activation == "half_glu2":
            x = x * jax.nn.sigmoid(nn.Dense(h, name="out2")(nn.gelu(x)))
        elif self.activation == "gelu":
            x = nn.gelu(x)
        else:
            raise ValueError(f"unknown activation {self.activation!r}; known: {ACTIVATIONS}")
        x = skip + x
        if self.do_norm and not self.prenorm:
            x = norm(x)
        return h_new, x


class S5(nn.Module):
    """A stack of S5 layers behind curriculax's memory-core interface; ``y`` is the last layer's output.

    The carry is a tuple of ``n_layers`` complex64 arrays [B, P], P = ssm_size // 2 with ``conj_sym``.
    """

    d_model: int = 256
    ssm_size: int = 256
    n_layers: int = 4
    conj_sym: bool = True
    activation: Literal["full_glu", "half_glu1", "half_glu2", "gelu"] = "full_glu"
    prenorm: bool = False
    do_norm: bool = False
    gtrxl_norm: bool = False
    discretization: Literal["zoh", "bilinear"] = "zoh"
    C_init: Literal["lecun_normal", "trunc_standard_normal", "complex_normal"] = "lecun_normal"
    dt_min: float = 0.001
    dt_max: float = 0.1
    step_rescale: float = 1.0
    clip_eigs: bool = False
    mode: Literal["parallel", "step"] = "parallel"
    input_proj: bool | None = None
    """Dense(d_model) on the input: None = only when F != d_model (the reference has none)"""

    @property
    def state_size(self) -> int:
        return self.ssm_size // 2 if self.conj_sym else self.ssm_size

    def _check(self):
        for value, known, what in ((self.activation, ACTIVATIONS, "activation"), (self.mode, MODES, "mode"),
                                   (self.discretization, DISCRETIZATIONS, "discretization"),
                                   (self.C_init, C_INITS, "C_init")):
            if value not in known:
                raise ValueError(f"unknown {what} {value!r}; known: {known}")
        if self.conj_sym and self.ssm_size % 2:
            raise ValueError(f"conj_sym needs an even ssm_size, got {self.ssm_size}")

    @nn.compact
    def __call__(self, carry, inputs: tuple[jax.Array, jax.Array]):
        self._check()
        x, reset = inputs
        if len(carry) != self.n_layers:
            raise ValueError(f"carry has {len(carry)} layers, the core {self.n_layers}")
        if self.input_proj or (self.input_proj is None and x.shape[-1] != self.d_model):
            x = nn.Dense(self.d_model, name="input_proj")(x)
        elif x.shape[-1] != self.d_model:
            raise ValueError(f"input width {x.shape[-1]} != d_model {self.d_model} and input_proj=False")
        reset = reset.astype(bool)
        new_carry = []
        for i in range(self.n_layers):
            ssm = S5SSM(self.d_model, self.ssm_size, self.conj_sym, self.discretization, self.C_init,
                        self.dt_min, self.dt_max, self.step_rescale, self.clip_eigs, self.mode,
                        parent=None)  # adopted by the layer (its params live under layer_i/ssm)
            layer = SequenceLayer(ssm, self.activation, self.prenorm, self.do_norm, self.gtrxl_norm,
                                  name=f"layer_{i}")
            h, x = layer(carry[i], x, reset)
            new_carry.append(h)
        return tuple(new_carry), x

    def initial_carry(self, batch: int) -> tuple[jax.Array, ...]:
        return tuple(jnp.zeros((batch, self.state_size), jnp.complex64) for _ in range(self.n_layers))
