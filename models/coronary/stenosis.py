"""Reduced-order stenosis pressure drop and the steady hyperaemic flow through a vessel.

The pressure drop across a stenosis is the Young–Tsai / Seeley–Young law (steady flow,
``dU/dt = 0``)::

    ΔP = K_v · μ · U_0 / D_0  +  (K_t · ρ / 2) · (A_0 / A_s − 1)² · |U_0| · U_0
    K_v = 32 · (0.83 · L_s + 1.64 · D_s) / D_0 · (A_0 / A_s)²,   K_t = 1.52

with ``U_0 = Q / A_0`` the mean velocity in the unobstructed vessel (diameter ``D_0``, area
``A_0``), ``D_s``, ``A_s`` the minimal lumen diameter and area and ``L_s`` the stenosis
length. Written in the flow, ``ΔP = a·Q + b·Q·|Q|`` with::

    a = K_v · μ / (A_0 · D_0)        (viscous)
    b = K_t · ρ / (2 A_0²) · (A_0 / A_s − 1)²   (convective / expansion loss)

The viscous term is the Poiseuille pressure drop ``128 μ L_e Q / (π D_s⁴)`` of a tube of the
stenosis diameter over the effective length ``L_e = 0.83 L_s + 1.64 D_s``
(:func:`poiseuille_drop`): Seeley and Young fitted that effective length, which includes the
entrance and exit of a smooth stenosis. The K_v form was checked against three public
implementations that cite the original papers (a C++ 1-D network code implementing Liang et
al. 2009, and two Python coronary reduced-order codes: ``Kv = 32*(0.83*Ls + 1.64*Ds)*(A0/As)**2/D0``,
``Kt = 1.52``).

A vessel at maximal hyperaemia is the aorta (``P_a``), a diffuse epicardial resistance
``R_d``, its focal lesions in series and the microvascular resistance ``R_μ`` draining to the
venous pressure ``P_v``. Every element carries the same flow, so::

    P_a − P_v = (R_d + R_μ + Σ a_j) · Q + (Σ b_j) · Q²

:func:`solve_flow` solves it by Newton's method from ``Q_0 = ΔP / A`` (the concave residual
makes the iteration monotone); :func:`quadratic_flow` is the closed-form root used to verify
it (:mod:`models.coronary.verification`).

Units: pressures mmHg, flows mL/s, lengths mm, viscosity mPa·s, density kg/m³; ``a`` in
mmHg·s/mL, ``b`` in mmHg·s²/mL².

References
----------
Young DF, Tsai FY. Flow characteristics in models of arterial stenoses. II. Unsteady flow.
J Biomech 1973;6:547-559 (and part I, steady flow, 6:395-410).
Seeley BD, Young DF. Effect of geometry on pressure losses across models of arterial
stenoses. J Biomech 1976;9:439-448.
Liang F, Takagi S, Himeno R, Liu H. Multi-scale modeling of the human cardiovascular system
with applications to aortic valvular and arterial stenoses. Med Biol Eng Comput
2009;47:743-755.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "K_T",
    "MMHG_PA",
    "lesion_coefficients",
    "lesion_drop",
    "poiseuille_drop",
    "quadratic_flow",
    "solve_flow",
    "sum_over_slots",
]

#: Pa per mmHg.
MMHG_PA = 133.322
#: Seeley & Young (1976) turbulent (expansion) loss coefficient.
K_T = 1.52
#: Effective-length coefficients of the viscous term (Seeley & Young 1976).
L_COEFF, D_COEFF = 0.83, 1.64
# m³ per mL; Pa·s/m³ -> mmHg·s/mL and Pa·s²/m⁶ -> mmHg·s²/mL²
_ML = 1e-6
_A_SI_TO_MMHG = _ML / MMHG_PA
_B_SI_TO_MMHG = _ML**2 / MMHG_PA


def lesion_coefficients(
    d0_mm: np.ndarray,
    ds_mm: np.ndarray,
    length_mm: np.ndarray,
    *,
    viscosity_mpa_s: float | np.ndarray = 3.5,
    density_kg_m3: float | np.ndarray = 1050.0,
    k_t: float | np.ndarray = K_T,
) -> tuple[np.ndarray, np.ndarray]:
    """Viscous and convective coefficients ``(a, b)`` of the steady stenosis law.

    Parameters
    ----------
    d0_mm, ds_mm : ndarray
        Reference (unobstructed) and minimal lumen diameter (mm); ``ds_mm`` is capped at
        ``d0_mm`` (a lumen wider than the reference loses nothing by expansion).
    length_mm : ndarray
        Stenosis length (mm).
    viscosity_mpa_s : float or ndarray
        Blood viscosity μ (mPa·s).
    density_kg_m3 : float or ndarray
        Blood density ρ (kg/m³).
    k_t : float or ndarray
        Expansion loss coefficient (1.52, Seeley & Young 1976).

    Returns
    -------
    a : ndarray
        mmHg·s/mL.
    b : ndarray
        mmHg·s²/mL².

    Examples
    --------
    A 50 % diameter stenosis, 15 mm long, in a 3 mm vessel:

    >>> a, b = lesion_coefficients(np.array([3.0]), np.array([1.5]), np.array([15.0]))
    >>> round(float(a[0]), 3), round(float(b[0]), 3)
    (3.15, 1.078)
    """
    d0 = np.asarray(d0_mm, dtype=np.float64) * 1e-3
    ds = np.minimum(np.asarray(ds_mm, dtype=np.float64) * 1e-3, d0)
    ls = np.asarray(length_mm, dtype=np.float64) * 1e-3
    a0 = 0.25 * np.pi * d0**2
    ratio = (d0 / ds) ** 2  # A_0 / A_s
    k_v = 32.0 * (L_COEFF * ls + D_COEFF * ds) / d0 * ratio**2
    mu = np.asarray(viscosity_mpa_s, dtype=np.float64) * 1e-3
    rho = np.asarray(density_kg_m3, dtype=np.float64)
    a = k_v * mu / (a0 * d0)
    b = np.asarray(k_t, dtype=np.float64) * rho / (2.0 * a0**2) * (ratio - 1.0) ** 2
    return a * _A_SI_TO_MMHG, b * _B_SI_TO_MMHG


def lesion_drop(q_ml_s: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pressure drop ``a·Q + b·Q·|Q|`` (mmHg) of a lesion at flow ``Q`` (mL/s)."""
    q = np.asarray(q_ml_s, dtype=np.float64)
    return a * q + b * q * np.abs(q)


def poiseuille_drop(
    q_ml_s: np.ndarray,
    diameter_mm: np.ndarray,
    length_mm: np.ndarray,
    *,
    viscosity_mpa_s: float | np.ndarray = 3.5,
) -> np.ndarray:
    """Poiseuille pressure drop ``128 μ L Q / (π D⁴)`` (mmHg) of a straight tube.

    The exact solution of steady laminar flow in a rigid tube (Hagen–Poiseuille); the
    reference of the code verification's long-lesion limit.
    """
    d = np.asarray(diameter_mm, dtype=np.float64) * 1e-3
    length = np.asarray(length_mm, dtype=np.float64) * 1e-3
    mu = np.asarray(viscosity_mpa_s, dtype=np.float64) * 1e-3
    q = np.asarray(q_ml_s, dtype=np.float64) * _ML
    return 128.0 * mu * length * q / (np.pi * d**4) / MMHG_PA


def quadratic_flow(dp_mmhg: np.ndarray, a_lin: np.ndarray, b_quad: np.ndarray) -> np.ndarray:
    """Closed-form positive root of ``b·Q² + a·Q = ΔP`` (mL/s).

    Written as ``Q = 2 ΔP / (a + sqrt(a² + 4 b ΔP))``, which has no cancellation and holds
    for ``b = 0`` (a purely linear vessel).
    """
    dp = np.asarray(dp_mmhg, dtype=np.float64)
    a = np.asarray(a_lin, dtype=np.float64)
    b = np.asarray(b_quad, dtype=np.float64)
    return 2.0 * dp / (a + np.sqrt(a * a + 4.0 * b * dp))


def sum_over_slots(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis by element-wise adds, slot after slot.

    ``ndarray.sum`` may vectorise a reduction differently depending on the memory alignment
    of a row, so the last bits of a patient's result could depend on its position in the
    batch; element-wise adds in a fixed order do not.
    """
    out = np.array(x[..., 0], dtype=np.float64, copy=True)
    for j in range(1, x.shape[-1]):
        out += x[..., j]
    return out


def solve_flow(
    dp_mmhg: np.ndarray,
    r_lin: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    tol: float = 1e-12,
    max_iter: int = 60,
    history: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Steady flow through elements in series: ``ΔP = r·Q + Σ_j (a_j·Q + b_j·Q·|Q|)``.

    Vectorised Newton iteration (sums over the lesion slots in a fixed order, so a patient's
    result does not depend on the batch it runs in) on the residual ``F(Q) = ΔP − r·Q − Σ_j ΔP_j(Q)``, started at
    ``Q_0 = ΔP / (r + Σ a_j)``; ``F`` is concave and decreasing for ``Q ≥ 0`` with ``F(Q_0) ≤ 0``,
    so the iterates decrease monotonically to the root (Newton's method on a convex/concave
    function; formal order of convergence 2). Each row stops at its own first step below
    ``tol``, so its result does not depend on the other rows of the batch.

    Parameters
    ----------
    dp_mmhg : ndarray, shape (m,)
        Driving pressure ``P_a − P_v`` (mmHg), > 0.
    r_lin : ndarray, shape (m,)
        Linear resistances outside the lesions (diffuse epicardial + microvascular,
        mmHg·s/mL), > 0.
    a, b : ndarray, shape (m, k)
        Coefficients of the ``k`` lesion slots of each vessel (zeros for empty slots).
    tol : float
        Relative step at which the iteration stops.
    max_iter : int
        Iteration cap.
    history : list, optional
        If given, every iterate is appended to it (for the observed order of convergence).

    Returns
    -------
    q : ndarray, shape (m,)
        Flow (mL/s).
    converged : ndarray of bool, shape (m,)
    """
    dp = np.asarray(dp_mmhg, dtype=np.float64)
    r = np.asarray(r_lin, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    q = dp / (r + sum_over_slots(a))
    converged = np.zeros(q.shape, dtype=bool)
    if history is not None:
        history.append(q.copy())
    for _ in range(max_iter):
        drop = sum_over_slots(a * q[..., None] + b * (q * np.abs(q))[..., None])
        slope = sum_over_slots(a + 2.0 * b * np.abs(q)[..., None])
        residual = dp - r * q - drop
        step = np.where(converged, 0.0, residual / (r + slope))
        q = q + step  # a converged row no longer moves: its result is its own iteration's
        if history is not None:
            history.append(q.copy())
        converged |= np.abs(step) <= tol * np.maximum(np.abs(q), 1e-300)
        if converged.all():
            break
    return q, converged
