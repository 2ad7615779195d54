"""Calculation verification: observed order of accuracy and the Grid Convergence Index.

All functions are vectorised: the solution values may be scalars or arrays of any broadcastable
shape (typically one entry per endpoint), so a whole refinement study of many quantities of
interest is verified in one call.

References
----------
Roache, P. J. (1994). Perspective: a method for uniform reporting of grid refinement studies.
    J. Fluids Eng. 116(3):405-413. doi:10.1115/1.2910291
Celik, I. B., Ghia, U., Roache, P. J., Freitas, C. J., Coleman, H., Raad, P. E. (2008).
    Procedure for estimation and reporting of uncertainty due to discretization in CFD
    applications. J. Fluids Eng. 130(7):078001. doi:10.1115/1.2960953
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .errors import CredibilityError

__all__ = ["GCIResult", "VerificationError", "gci", "gci_oberkampf_roy", "observed_order"]

#: Convergence classes of a three-grid study (Celik et al. 2008, section 2, step 4).
CONVERGENCE_CLASSES = ("monotonic", "oscillatory", "divergent", "grid_independent")


class VerificationError(CredibilityError):
    """Invalid input to a verification calculation (refinement ratio, shapes, safety factor)."""


@dataclass(frozen=True)
class GCIResult:
    """Result of a three-grid GCI study (Celik et al. 2008), one entry per quantity.

    Attributes
    ----------
    p : ndarray
        Apparent (observed) order of accuracy, dimensionless. NaN where the study is
        grid independent (``f1 == f2``) or the fixed-point iteration did not converge.
    f_ext : ndarray
        Richardson-extrapolated value ``phi_ext^21``, in the units of the inputs.
    e_a : ndarray
        Approximate relative error between fine and medium grids, ``|(f1 - f2) / f1|`` (fraction).
    e_ext : ndarray
        Extrapolated relative error ``|(f_ext - f1) / f_ext|`` (fraction).
    gci_fine : ndarray
        Fine-grid convergence index ``fs * e_a / (r21**p - 1)`` (fraction; multiply by 100 for %).
    convergence : ndarray of str
        One of :data:`CONVERGENCE_CLASSES`: ``oscillatory`` when ``eps21`` and ``eps32`` differ in
        sign, ``monotonic`` when the differences shrink on refinement
        (``ln|eps32 / eps21| + q(p) > 0``; for a constant ratio ``0 < eps21 / eps32 < 1``),
        ``divergent`` otherwise (then ``p``, ``f_ext`` and the GCI are not meaningful).
    fs : float
        Safety factor of the Celik procedure (NaN when it varies per quantity, see ``fs_used``).
    p_used, fs_used : ndarray or None
        Order and safety factor each quantity's GCI was computed with, when they differ from
        ``p`` and ``fs`` (:func:`gci_oberkampf_roy`); None for :func:`gci`.
    """

    p: NDArray[np.float64]
    f_ext: NDArray[np.float64]
    e_a: NDArray[np.float64]
    e_ext: NDArray[np.float64]
    gci_fine: NDArray[np.float64]
    convergence: NDArray[np.str_]
    fs: float
    p_used: NDArray[np.float64] | None = None
    fs_used: NDArray[np.float64] | None = None

    def to_frame(self, index: ArrayLike | None = None) -> pd.DataFrame:
        """Return the result as a table, one row per quantity (errors in percent).

        Parameters
        ----------
        index : array_like, optional
            Row labels (e.g. endpoint names); default ``0 … n-1``.

        Returns
        -------
        pandas.DataFrame
            Columns ``p``, ``f_ext``, ``e_a_pct``, ``e_ext_pct``, ``gci_fine_pct``,
            ``convergence``.
        """
        frame = pd.DataFrame(
            {
                "p": np.ravel(self.p),
                "f_ext": np.ravel(self.f_ext),
                "e_a_pct": 100.0 * np.ravel(self.e_a),
                "e_ext_pct": 100.0 * np.ravel(self.e_ext),
                "gci_fine_pct": 100.0 * np.ravel(self.gci_fine),
                "convergence": np.ravel(self.convergence),
            }
        )
        if self.p_used is not None:
            frame["p_used"] = np.ravel(self.p_used)
            frame["fs_used"] = np.ravel(self.fs_used)
        if index is not None:
            frame.index = pd.Index(np.ravel(np.asarray(index)), name="quantity")
        return frame

    def summary(self) -> dict[str, float]:
        """Scalar evidence for a credibility plan.

        Returns
        -------
        dict
            ``gci_max_pct`` (largest fine-grid GCI, %; NaN-aware), ``observed_order_min``
            (smallest finite apparent order), ``monotonic_fraction`` (share of quantities in
            monotonic convergence or grid independent), ``n_quantities``.
        """
        gci_pct = 100.0 * np.ravel(self.gci_fine)
        p = np.ravel(self.p)
        conv = np.ravel(self.convergence)
        ok = np.isin(conv, ("monotonic", "grid_independent"))
        return {
            "gci_max_pct": float(np.nanmax(gci_pct)) if np.isfinite(gci_pct).any() else np.nan,
            "observed_order_min": float(np.nanmin(p)) if np.isfinite(p).any() else np.nan,
            "monotonic_fraction": float(ok.mean()) if ok.size else np.nan,
            "n_quantities": int(ok.size),
        }


def _ratio(r: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(r, dtype=float)
    if not np.all(arr > 1.0):
        raise VerificationError(
            f"refinement ratio {name} must be > 1 (coarse spacing / fine spacing); got {r!r}"
        )
    return arr


_P_MAX = 50.0  # orders above this are treated as "not found" (r**p overflows in practice)


def _q(p: np.ndarray, r21: np.ndarray, r32: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Celik et al. (2008) eq. 5: ``q(p) = ln((r21**p - s) / (r32**p - s))``."""
    return np.log((r21**p - s) / (r32**p - s))


def _bisect_order(
    log_ratio: np.ndarray, r21: np.ndarray, r32: np.ndarray, s: np.ndarray, tol: float
) -> np.ndarray:
    """Solve ``p ln r21 = |ln|eps32/eps21| + q(p)|`` by bisection where fixed-point fails.

    The fixed-point map of Celik et al. (2008) is not a contraction for strongly non-uniform
    ratios (e.g. ``r21 = 1.25``, ``r32 = 2``). Each sign branch ``±(ln|eps32/eps21| + q(p)) -
    p ln r21`` is tried on ``[1e-9, _P_MAX]``; the first with a sign change is bisected.
    Entries without a bracketed root get NaN.
    """
    ln_r21 = np.log(r21)
    result = np.full(log_ratio.shape, np.nan)
    for sign in (1.0, -1.0):

        def g(p: np.ndarray, sign: float = sign) -> np.ndarray:
            return sign * (log_ratio + _q(p, r21, r32, s)) - p * ln_r21

        lo = np.full(log_ratio.shape, 1e-9)
        hi = np.full(log_ratio.shape, _P_MAX)
        g_lo = g(lo)
        bracket = np.isnan(result) & (g_lo * g(hi) < 0)
        if not bracket.any():
            continue
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            g_mid = g(mid)
            left = g_lo * g_mid <= 0
            hi = np.where(left, mid, hi)
            lo = np.where(left, lo, mid)
            g_lo = np.where(left, g_lo, g_mid)
            if np.nanmax(np.where(bracket, hi - lo, 0.0)) <= tol:
                break
        result = np.where(bracket, 0.5 * (lo + hi), result)
    return result


def observed_order(
    f_coarse: ArrayLike, f_medium: ArrayLike, f_fine: ArrayLike, r: ArrayLike
) -> NDArray[np.float64]:
    """Observed order of accuracy from three solutions with a constant refinement ratio.

    ``p = ln((f_coarse - f_medium) / (f_medium - f_fine)) / ln(r)``
    (Roache 1994, eq. 11; Celik et al. 2008 eq. 3 with ``q(p) = 0``).

    Parameters
    ----------
    f_coarse, f_medium, f_fine : array_like
        Solution on the coarse, medium and fine grid (any units, broadcastable shapes).
    r : array_like
        Constant grid refinement ratio ``h_coarse / h_medium = h_medium / h_fine`` (> 1).

    Returns
    -------
    ndarray
        Observed order (dimensionless). Negative values mean the differences grow on refinement
        (divergence); NaN where the differences change sign (oscillatory convergence) or vanish.

    Raises
    ------
    VerificationError
        If ``r <= 1``.

    Examples
    --------
    >>> h = np.array([0.4, 0.2, 0.1]); f = 1.0 + 0.3 * h**2
    >>> round(float(observed_order(f[0], f[1], f[2], 2.0)), 6)
    2.0
    """
    r_arr = _ratio(r, "r")
    e32 = np.asarray(f_coarse, dtype=float) - np.asarray(f_medium, dtype=float)
    e21 = np.asarray(f_medium, dtype=float) - np.asarray(f_fine, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = e32 / e21
        p = np.where(ratio > 0, np.log(np.where(ratio > 0, ratio, 1.0)) / np.log(r_arr), np.nan)
    return np.asarray(p, dtype=float)


def gci(
    f1: ArrayLike,
    f2: ArrayLike,
    f3: ArrayLike,
    r21: ArrayLike,
    r32: ArrayLike,
    *,
    fs: float = 1.25,
    tol: float = 1e-12,
    max_iter: int = 500,
) -> GCIResult:
    """Grid Convergence Index of the fine-grid solution (Celik et al. 2008 five-step procedure).

    Grids are numbered fine (1) to coarse (3): ``h1 < h2 < h3``, ``r21 = h2 / h1``,
    ``r32 = h3 / h2``. The apparent order solves

    ``p = |ln|eps32 / eps21| + q(p)| / ln(r21)``, ``q(p) = ln((r21**p - s) / (r32**p - s))``,
    ``s = sign(eps32 / eps21)``, ``eps32 = f3 - f2``, ``eps21 = f2 - f1``

    by fixed-point iteration (exact in one step when ``r21 == r32``), falling back to bisection
    where the iteration does not converge. Then
    ``f_ext = (r21**p f1 - f2) / (r21**p - 1)``, ``e_a = |(f1 - f2) / f1|``,
    ``e_ext = |(f_ext - f1) / f_ext|`` and ``GCI_fine = fs * e_a / (r21**p - 1)``.

    Parameters
    ----------
    f1, f2, f3 : array_like
        Solution on the fine, medium and coarse grid (any units, broadcastable shapes,
        e.g. one entry per endpoint).
    r21, r32 : array_like
        Refinement ratios (> 1); they may differ (non-uniform refinement).
    fs : float, default 1.25
        Safety factor (Roache 1994: 1.25 for three-grid studies, 3.0 for two grids).
    tol : float, default 1e-12
        Absolute convergence tolerance of the fixed-point iteration on ``p``.
    max_iter : int, default 500
        Maximum number of fixed-point iterations before the bisection fallback; entries
        without a solution get ``p = NaN``.

    Returns
    -------
    GCIResult
        Apparent order, extrapolated value, relative errors and fine-grid GCI (fractions), and
        the convergence class of each quantity.

    Raises
    ------
    VerificationError
        If a refinement ratio is ``<= 1`` or ``fs <= 0``.

    References
    ----------
    Celik et al. (2008), J. Fluids Eng. 130:078001, doi:10.1115/1.2960953; Roache (1994),
    J. Fluids Eng. 116:405-413, doi:10.1115/1.2910291.

    Examples
    --------
    Celik et al. (2008), Table 1, first column (dimensionless reattachment length):

    (N = 18000, 8000, 4500 cells in 2-D, so ``r21 = 1.5`` and ``r32 = (8000 / 4500) ** 0.5``):

    >>> res = gci(6.063, 5.972, 5.863, 1.5, (8000 / 4500) ** 0.5)
    >>> round(float(res.p), 2), round(float(res.f_ext), 4), round(100 * float(res.gci_fine), 2)
    (1.53, 6.1685, 2.17)
    """
    if not fs > 0:
        raise VerificationError(f"safety factor fs must be > 0; got {fs!r}")
    r21a = _ratio(r21, "r21")
    r32a = _ratio(r32, "r32")
    f1a, f2a, f3a, r21a, r32a = np.broadcast_arrays(
        np.asarray(f1, dtype=float),
        np.asarray(f2, dtype=float),
        np.asarray(f3, dtype=float),
        r21a,
        r32a,
    )
    eps21 = f2a - f1a
    eps32 = f3a - f2a
    independent = eps21 == 0.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(independent, np.nan, eps32 / np.where(independent, 1.0, eps21))
        s = np.sign(ratio)
        s = np.where(s == 0, 1.0, s)
        log_ratio = np.log(np.abs(ratio))
        ln_r21 = np.log(r21a)
        p = np.abs(log_ratio) / ln_r21
        converged = ~np.isfinite(p) | (r21a == r32a)
        for _ in range(max_iter):
            if converged.all():
                break
            q = _q(np.minimum(p, _P_MAX), r21a, r32a, s)
            p_new = np.abs(log_ratio + q) / ln_r21
            step = np.abs(p_new - p)
            p = np.where(converged, p, p_new)
            converged |= step <= tol
        stuck = ~converged | ~(p < _P_MAX)
        if stuck.any():
            p = np.where(stuck, _bisect_order(log_ratio, r21a, r32a, s, tol), p)
        p = np.where(np.isfinite(p) & (p > 0), p, np.nan)
        rp = r21a**p
        f_ext = np.where(independent, f1a, (rp * f1a - f2a) / (rp - 1.0))
        e_a = np.abs(eps21 / f1a)
        e_ext = np.where(independent, 0.0, np.abs((f_ext - f1a) / f_ext))
        gci_fine = np.where(independent, 0.0, fs * e_a / (rp - 1.0))

        # sign of the expression inside |.| at the solution: > 0 when the differences shrink
        # at the rate implied by p (for r21 == r32 this is R = eps21 / eps32 < 1)
        inner = log_ratio + np.log((r21a**p - s) / (r32a**p - s))
    convergence = np.where(
        independent,
        "grid_independent",
        np.where(s < 0, "oscillatory", np.where(inner > 0, "monotonic", "divergent")),
    )
    return GCIResult(
        p=np.asarray(p, dtype=float),
        f_ext=np.asarray(f_ext, dtype=float),
        e_a=np.asarray(e_a, dtype=float),
        e_ext=np.asarray(e_ext, dtype=float),
        gci_fine=np.asarray(gci_fine, dtype=float),
        convergence=np.asarray(convergence, dtype=str),
        fs=float(fs),
    )


def gci_oberkampf_roy(
    f1: ArrayLike,
    f2: ArrayLike,
    f3: ArrayLike,
    r: float,
    *,
    p_formal: float,
) -> GCIResult:
    """GCI with the factor-of-safety rule of Oberkampf & Roy (2010) for a constant ratio ``r``.

    The observed order ``p`` comes from :func:`gci` (Celik et al. 2008). Where it is within
    10 % of the formal order ``p_formal`` the study is taken to be in the asymptotic range
    (``Fs = 1.25``, ``p_used = p``); otherwise ``Fs = 3`` and
    ``p_used = min(max(0.5, p), p_formal)`` (oscillatory or failed ``p``: 0.5). Then
    ``GCI_fine = Fs * e_a / (r**p_used - 1)``. This bounds the GCI where Celik's formula blows
    up because a tiny apparent order comes from non-asymptotic or event-limited data.

    Parameters
    ----------
    f1, f2, f3 : array_like
        Fine, medium and coarse solutions.
    r : float
        Constant refinement ratio (> 1).
    p_formal : float
        Formal order of accuracy of the discretisation (> 0).

    Returns
    -------
    GCIResult
        As :func:`gci`, with ``gci_fine`` from the rule above and ``p_used``/``fs_used`` set.

    References
    ----------
    Oberkampf WL, Roy CJ (2010) *Verification and Validation in Scientific Computing*,
    Cambridge University Press, section 8.7.2 (factor of safety method); Roache PJ (1998)
    *Verification and Validation in Computational Science and Engineering*, Hermosa.

    Examples
    --------
    >>> res = gci_oberkampf_roy([1.0], [1.0 + 1e-3], [1.0 + 5e-3], 2.0, p_formal=2.0)
    >>> round(float(res.p[0]), 6), float(res.fs_used[0]), round(100 * float(res.gci_fine[0]), 4)
    (2.0, 1.25, 0.0417)
    """
    if not p_formal > 0:
        raise VerificationError(f"p_formal must be > 0; got {p_formal!r}")
    base = gci(f1, f2, f3, r, r)
    p = base.p
    with np.errstate(invalid="ignore"):
        asymptotic = np.isfinite(p) & (np.abs(p - p_formal) / p_formal <= 0.1)
        p_used = np.where(
            asymptotic, p, np.minimum(np.maximum(np.nan_to_num(p, nan=0.5), 0.5), p_formal)
        )
        fs_used = np.where(asymptotic, 1.25, 3.0)
        independent = base.convergence == "grid_independent"
        gci_fine = np.where(independent, 0.0, fs_used * base.e_a / (float(r) ** p_used - 1.0))
    return GCIResult(
        p=base.p,
        f_ext=base.f_ext,
        e_a=base.e_a,
        e_ext=base.e_ext,
        gci_fine=np.asarray(gci_fine, dtype=float),
        convergence=base.convergence,
        fs=float("nan"),
        p_used=np.asarray(p_used, dtype=float),
        fs_used=np.asarray(fs_used, dtype=float),
    )
