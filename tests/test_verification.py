"""Known-answer tests of credibility.verification (Roache 1994; Celik et al. 2008)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from credibility.verification import VerificationError, gci, observed_order


def test_celik_2008_table1_first_column():
    # Celik et al. (2008) J Fluids Eng 130:078001, Table 1, column 1: N = 18000, 8000, 4500
    # cells (2-D), phi = 6.063, 5.972, 5.863 -> p = 1.53, phi_ext = 6.1685, e_a = 1.5 %,
    # e_ext = 1.7 %, GCI_fine = 2.17 %.
    res = gci(6.063, 5.972, 5.863, np.sqrt(18000 / 8000), np.sqrt(8000 / 4500))
    assert round(float(res.p), 2) == 1.53
    assert round(float(res.f_ext), 4) == 6.1685
    assert round(100 * float(res.e_a), 1) == 1.5
    assert round(100 * float(res.e_ext), 1) == 1.7
    assert round(100 * float(res.gci_fine), 2) == 2.17
    assert res.convergence.item() == "monotonic"


@pytest.mark.parametrize("p_true", [1.0, 2.0, 3.3])
@pytest.mark.parametrize("ratios", [(2.0, 2.0), (1.5, 1.3), (1.3, 1.7)])
def test_manufactured_solution_recovers_order_and_limit(p_true, ratios):
    # f(h) = f0 + c h^p is reproduced exactly by Richardson extrapolation.
    f0, c = 3.0, np.array([0.7, -2.0, 5e-3])
    r21, r32 = ratios
    h1 = 0.01
    h2, h3 = h1 * r21, h1 * r21 * r32
    f1, f2, f3 = (f0 + c * h**p_true for h in (h1, h2, h3))
    res = gci(f1, f2, f3, r21, r32)
    np.testing.assert_allclose(res.p, p_true, rtol=1e-7)
    np.testing.assert_allclose(res.f_ext, f0, rtol=1e-9)
    # GCI = fs |f1 - f_ext| / |f1| exactly for a solution in the asymptotic range
    np.testing.assert_allclose(res.gci_fine, 1.25 * np.abs(f1 - f0) / np.abs(f1), rtol=1e-6)
    assert (res.convergence == "monotonic").all()
    if r21 == r32:
        np.testing.assert_allclose(observed_order(f3, f2, f1, r21), p_true, rtol=1e-7)


@given(
    p=st.floats(0.5, 4.0),
    r21=st.floats(1.2, 3.0),
    r32=st.floats(1.2, 3.0),
    c=st.floats(0.01, 10.0),
)
def test_fixed_point_iteration_recovers_order_for_any_ratios(p, r21, r32, c):
    h1 = 0.05
    f = [1.0 + c * h**p for h in (h1, h1 * r21, h1 * r21 * r32)]
    res = gci(*f, r21, r32)
    assert abs(float(res.p) - p) < 1e-6 * max(1.0, p)


def test_convergence_classes_and_grid_independence():
    res = gci([1.0, 1.0, 1.0, 2.0], [1.05, 0.9, 1.0, 2.1], [1.15, 1.2, 1.3, 2.15], 2.0, 2.0)
    assert list(res.convergence) == ["monotonic", "oscillatory", "grid_independent", "divergent"]
    assert res.gci_fine[2] == 0.0 and res.f_ext[2] == 1.0
    frame = res.to_frame(index=["a", "b", "c", "d"])
    assert list(frame.index) == ["a", "b", "c", "d"]
    summary = res.summary()
    assert summary["monotonic_fraction"] == 0.5
    assert summary["n_quantities"] == 4
    assert summary["gci_max_pct"] == pytest.approx(np.nanmax(100 * res.gci_fine))


def test_observed_order_sign_changes_give_nan_and_divergence_negative():
    assert np.isnan(observed_order(1.0, 1.1, 1.05, 2.0))
    assert observed_order(1.0, 1.1, 1.5, 2.0) < 0


@pytest.mark.parametrize("bad", [1.0, 0.5, -2.0])
def test_refinement_ratio_must_exceed_one(bad):
    with pytest.raises(VerificationError, match="r21"):
        gci(1.0, 1.1, 1.2, bad, 2.0)
    with pytest.raises(VerificationError, match="fs"):
        gci(1.0, 1.1, 1.2, 2.0, 2.0, fs=0.0)


def test_docstring_examples_run():
    import doctest

    import credibility.verification as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
