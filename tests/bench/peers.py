#!/usr/bin/python3
"""Fits the benchmark's logistic regression with a peer library and reports, as one CSV
record on stdout, the time to the answer and the answer's quality.

usage: peers.py SOLVER DATA.npy [--rows N] [--tol T] [--max-iter M]
  SOLVER: sklearn-newton-cholesky | sklearn-lbfgs | statsmodels-irls

The NPY file is the one `natgrad generate` wrote (label in column 0, float64, C order).
It is read in chunks straight into a C-contiguous float64 X and y, as natgrad's reader
does, so that neither side pays for a copy the other avoids. No penalty, no intercept
(the generated data has none): the maximum-likelihood fit natgrad computes.

Record: solver,rows,cols,load_s,fit_s,iterations,grad_max,loss,note
  grad_max: max |gradient of the mean log-loss| at the returned coefficients, computed
  here the same way for every solver (natgrad's stopping rule is grad_max <= 1e-8).
Runs under Debian's python3 (python3-sklearn, python3-statsmodels); thread counts come
from OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set by tests/bench/run.sh.
"""
import argparse
import sys
import time
import warnings

import numpy as np


def read_npy(path, rows):
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = np.lib.format._read_array_header(f, version)
        if fortran or dtype != np.dtype("<f8") or len(shape) != 2:
            sys.exit(f"{path}: expected a C-order float64 2-D array, got {dtype} {shape}")
        n = shape[0] if rows <= 0 else min(rows, shape[0])
        cols = shape[1]
        X = np.empty((n, cols - 1), dtype=np.float64)
        y = np.empty(n, dtype=np.float64)
        chunk = max(1, (64 << 20) // (8 * cols))
        for r0 in range(0, n, chunk):
            m = min(chunk, n - r0)
            block = np.fromfile(f, dtype="<f8", count=m * cols).reshape(m, cols)
            y[r0:r0 + m] = block[:, 0]
            X[r0:r0 + m] = block[:, 1:]
        return X, y, shape[0]


def quality(X, y, beta):
    eta = X @ beta
    p = 0.5 * (1 + np.tanh(0.5 * eta))  # sigmoid without overflow
    g = X.T @ (p - y) / len(y)
    # mean log-loss, stably: log(1 + e^eta) - y eta
    loss = np.mean(np.logaddexp(0, eta) - y * eta)
    return float(np.max(np.abs(g))), float(loss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("solver")
    ap.add_argument("data")
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--max-iter", type=int, default=100)
    a = ap.parse_args()

    t0 = time.perf_counter()
    X, y, _ = read_npy(a.data, a.rows)
    load_s = time.perf_counter() - t0
    n, d = X.shape
    note = ""
    t0 = time.perf_counter()
    if a.solver.startswith("sklearn-"):
        from sklearn.linear_model import LogisticRegression
        solver = a.solver[len("sklearn-"):]
        # newton-cholesky minimises the mean loss and stops at max|grad| <= tol: the
        # same rule as natgrad. lbfgs minimises the summed loss (gtol on its gradient),
        # so its tol is scaled by n; scipy's own ftol may stop it earlier.
        tol = a.tol if solver == "newton-cholesky" else a.tol * n
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            m = LogisticRegression(penalty=None, solver=solver, tol=tol, max_iter=a.max_iter,
                                   fit_intercept=False)
            m.fit(X, y)
            if any("converge" in str(x.message).lower() for x in w):
                note = "did not converge (sklearn warning)"
        beta = m.coef_.ravel()
        iters = int(np.max(m.n_iter_))
    elif a.solver == "statsmodels-irls":
        import statsmodels.api as sm
        r = sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=a.tol, maxiter=a.max_iter)
        beta = np.asarray(r.params)
        iters = int(r.fit_history["iteration"]) if hasattr(r, "fit_history") else -1
        if not r.converged:
            note = "did not converge"
    else:
        sys.exit(f"unknown solver {a.solver}")
    fit_s = time.perf_counter() - t0
    gmax, loss = quality(X, y, beta)
    print(f"{a.solver},{n},{d},{load_s:.4f},{fit_s:.4f},{iters},{gmax:.3e},{loss:.12g},{note}")


if __name__ == "__main__":
    main()
