#!/usr/bin/python3
"""Regenerates the multinomial reference fixture(s) of natgrad's test suite with
statsmodels' MNLogit, then re-reads every fixture in the directory (the R-made GLM
ones too) and recomputes its numbers from the CSV alone with numpy.

    /usr/bin/python3 tests/peers/multinomial_reference.py tests/fixtures/glm
    /usr/bin/python3 tests/peers/multinomial_reference.py --verify-only tests/fixtures/glm

Needs Debian's python3-statsmodels, python3-sklearn (for the wine data file it
ships), python3-numpy and python3-scipy (--verify-only needs numpy and scipy only).

Multinomial parameter layout (class-major): d columns including the intercept,
classes 1..K-1 (class 0 is the reference); the coefficient of column j for class k
sits at index j + d*(k-1). statsmodels' params is a d x (K-1) array, so this is its
Fortran-order flattening.
"""
import csv
import json
import math
import os
import sys
import warnings

import numpy as np
from scipy.optimize import linprog
from scipy.special import expit, gammaln, log_ndtr, ndtr

# ---------------------------------------------------------------- output format


def num(x):
    x = float(x)
    if not math.isfinite(x):
        raise ValueError("non-finite number")
    return "%.17g" % x


def write_csv(path, header, columns):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row in zip(*columns):
            f.write(",".join(num(v) for v in row) + "\n")


def write_json(path, fields):
    def enc(v):
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(enc(u) for u in v) + "]"
        return num(v)

    body = ",\n".join("  %s: %s" % (json.dumps(k), enc(v)) for k, v in fields.items())
    with open(path, "w") as f:
        f.write("{\n" + body + "\n}\n")


def read_fixture(outdir, name):
    with open(os.path.join(outdir, name + ".json")) as f:
        meta = json.load(f)
    with open(os.path.join(outdir, name + ".csv")) as f:
        rows = list(csv.reader(f))
    header = rows[0]
    data = np.array([[float(v) for v in r] for r in rows[1:]])
    return meta, {h: data[:, i] for i, h in enumerate(header)}, header


# ---------------------------------------------------------------- multinomial


def softmax_probs(X, beta_flat, K):
    d = X.shape[1]
    B = np.column_stack([np.zeros(d), beta_flat.reshape(K - 1, d).T])  # d x K
    eta = X @ B
    eta -= eta.max(axis=1, keepdims=True)
    P = np.exp(eta)
    return P / P.sum(axis=1, keepdims=True)


def multinomial_pieces(X, y, beta_flat, K):
    """log-likelihood, score, expected Fisher F and meat B (class-major order)."""
    n, d = X.shape
    P = softmax_probs(X, beta_flat, K)
    Y = np.zeros((n, K))
    Y[np.arange(n), y] = 1.0
    ll = float(np.sum(np.log(P[np.arange(n), y])))
    R = (Y - P)[:, 1:]  # n x (K-1)
    score = (R.T @ X).reshape(-1)  # class-major: index j + d*(k-1)
    q = K - 1
    F = np.zeros((q * d, q * d))
    Bm = np.zeros((q * d, q * d))
    for i in range(n):
        p = P[i, 1:]
        xx = np.outer(X[i], X[i])
        F += np.kron(np.diag(p) - np.outer(p, p), xx)
        Bm += np.kron(np.outer(R[i], R[i]), xx)
    return ll, score, F, Bm, P


def separation_lp_multinomial(X, y, K):
    """max over ||b||_inf <= 1 of sum_{i, k != y_i} x_i'(b_{y_i} - b_k) subject to
    every term >= 0, b_0 = 0. Zero iff the MLE exists (no quasi-separation)."""
    n, d = X.shape
    rows = []
    for i in range(n):
        for k in range(K):
            if k == y[i]:
                continue
            a = np.zeros(d * (K - 1))
            if y[i] > 0:
                a[(y[i] - 1) * d:y[i] * d] += X[i]
            if k > 0:
                a[(k - 1) * d:k * d] -= X[i]
            rows.append(a)
    A = np.array(rows)
    A /= np.abs(A).max()
    res = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(len(A)),
                  bounds=[(-1, 1)] * A.shape[1], method="highs")
    assert res.status == 0, res.message
    return -res.fun


def separation_lp_binomial(X, y, w):
    """Same test for (grouped) binomial data: rows with 0 < y < 1 force x'b = 0."""
    keep = w > 0
    X, y = X[keep], y[keep]
    s = np.where(y >= 1, 1.0, -1.0)
    inner = (y > 0) & (y < 1)
    scale = np.abs(X).max()
    A = s[~inner, None] * X[~inner] / scale  # want A b >= 0
    A_eq = X[inner] / scale if inner.any() else None
    res = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(len(A)), A_eq=A_eq,
                  b_eq=np.zeros(len(A_eq)) if A_eq is not None else None,
                  bounds=[(-1, 1)] * X.shape[1], method="highs")
    assert res.status == 0, res.message
    return -res.fun


def make_wine(outdir, name, standardize):
    """class ~ alcohol + malic_acid + alcalinity_of_ash on the 178 UCI wines (3
    cultivars), raw or with each column standardised (mean 0, sample sd 1)."""
    import statsmodels
    import statsmodels.api as sm
    from sklearn.datasets import load_wine

    cols = ["alcohol", "malic_acid", "alcalinity_of_ash"]
    wine = load_wine()
    idx = [list(wine.feature_names).index(c) for c in cols]
    Xraw = wine.data[:, idx]
    if standardize:
        Xraw = (Xraw - Xraw.mean(axis=0)) / Xraw.std(axis=0, ddof=1)
    y = wine.target.astype(int)
    K = int(y.max()) + 1
    n = len(y)
    X = np.column_stack([np.ones(n), Xraw])
    d = X.shape[1]

    lp = separation_lp_multinomial(X, y, K)
    if lp > 1e-9:
        raise SystemExit("%s: the classes are (quasi-)separable, LP value %g" % (name, lp))

    model = sm.MNLogit(y, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any convergence / overflow warning is fatal
        # newton stops on max |step| < tol (absolute); quadratic convergence puts the
    # estimate at rounding level once the step is 1e-10 (checked via the score).
    res = model.fit(method="newton", maxiter=500, tol=1e-10, disp=0)
    if not res.mle_retvals["converged"]:
        raise SystemExit(name + ": statsmodels did not converge")
    params = np.asarray(res.params)  # d x (K-1)
    assert params.shape == (d, K - 1)
    beta = params.flatten(order="F")  # class-major
    bse = np.asarray(res.bse).flatten(order="F")

    # statsmodels' own flat layout (score, cov_params) is the same class-major one.
    ll, score, F, Bm, P = multinomial_pieces(X, y, beta, K)
    assert np.allclose(model.score(beta), score, rtol=1e-10, atol=1e-10)
    assert abs(ll - res.llf) < 1e-10 * abs(ll)
    for k in range(1, K):
        for j in range(d):
            assert params[j, k - 1] == beta[j + d * (k - 1)]
    scale = np.abs((np.column_stack([(y == k) - P[:, k] for k in range(1, K)]).T[:, :, None]
                    * X[None, :, :])).sum(axis=1).reshape(-1)
    rel_score = float(np.max(np.abs(score) / scale))
    if rel_score > 1e-9:
        raise SystemExit("%s: gradient not zero, relative %g" % (name, rel_score))
    Finv = np.linalg.inv(F)
    assert np.allclose(np.sqrt(np.diag(Finv)), bse, rtol=1e-8)
    Dm = np.sqrt(np.diag(F))
    kappa = np.linalg.cond(F / np.outer(Dm, Dm))
    robust = np.sqrt(np.diag(Finv @ Bm @ Finv))
    counts = np.bincount(y, minlength=K)
    llnull_closed = float(np.sum(counts * np.log(counts / n)))
    # res.llnull comes from a default-tolerance fit (~1e-10 relative off); refit
    # the intercept-only model with Newton to rounding level.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res0 = sm.MNLogit(y, np.ones((n, 1))).fit(method="newton", maxiter=500, tol=1e-10, disp=0)
    llnull = float(res0.llf)
    assert abs(llnull_closed - res.llnull) < 1e-8 * abs(llnull_closed)
    assert abs(llnull_closed - llnull) < 1e-13 * abs(llnull_closed)

    header = ["y"] + cols
    write_csv(os.path.join(outdir, name + ".csv"), header, [y] + [Xraw[:, i] for i in range(len(cols))])
    names = ["%s:class%d" % (c, k) for k in range(1, K) for c in ["(Intercept)"] + cols]
    df_resid = float(res.df_resid)
    assert df_resid == n - d * (K - 1)
    write_json(os.path.join(outdir, name + ".json"), {
        "dataset": "wine",
        "source": "sklearn.datasets.load_wine (UCI wine; Debian python3-sklearn %s)" % __import__("sklearn").__version__,
        "formula": ("class ~ scale(alcohol) + scale(malic_acid) + scale(alcalinity_of_ash)"
                    if standardize else "class ~ alcohol + malic_acid + alcalinity_of_ash"),
        "peer": "statsmodels %s MNLogit" % statsmodels.__version__,
        "family": "multinomial", "link": "softmax", "intercept": True,
        "weight_column": None, "offset_column": None,
        "n_obs": n, "n_classes": K,
        "names": names,
        "coefficients": list(beta), "std_errors": list(bse), "robust_std_errors": list(robust),
        "log_likelihood": res.llf, "deviance": -2 * res.llf, "null_deviance": -2 * llnull,
        "aic": res.aic, "bic": res.bic, "dispersion": 1.0, "df_residual": int(df_resid),
    })
    print("%-34s n=%4d d=%d K=%d iter=%s |score|rel=%.1e kappa=%.3g min max p=%.3g ll=%.10g"
          % (name, n, d, K, res.mle_retvals.get("iterations"), rel_score, kappa,
             P[np.arange(n), y].min(), res.llf))


# ---------------------------------------------------------------- verification

LINKS = {
    "logit": (expit, lambda e: expit(e) * expit(-e)),
    "probit": (ndtr, lambda e: np.exp(-0.5 * e * e) / math.sqrt(2 * math.pi)),
    "cloglog": (lambda e: -np.expm1(-np.exp(e)), lambda e: np.exp(e - np.exp(e))),
    "log": (np.exp, np.exp),
    "identity": (lambda e: e, np.ones_like),
    "inverse": (lambda e: 1 / e, lambda e: -1 / (e * e)),
}
VARIANCE = {
    "binomial": lambda m: m * (1 - m),
    "poisson": lambda m: m,
    "gaussian": np.ones_like,
    "gamma": lambda m: m * m,
}


def xlogy(a, b):
    return np.where(a == 0, 0.0, a * np.log(np.where(a == 0, 1.0, b)))


def unit_deviance(fam, y, mu):
    if fam == "binomial":
        return 2 * (xlogy(y, y / mu) + xlogy(1 - y, (1 - y) / (1 - mu)))
    if fam == "poisson":
        return 2 * (xlogy(y, y / mu) - (y - mu))
    if fam == "gaussian":
        return (y - mu) ** 2
    if fam == "gamma":
        return 2 * (-np.log(y / mu) + (y - mu) / mu)
    raise ValueError(fam)


def loglik(fam, y, mu, w, dev):
    if fam == "binomial":
        k = np.round(w * y)
        return float(np.sum(gammaln(w + 1) - gammaln(k + 1) - gammaln(w - k + 1)
                            + xlogy(k, mu) + xlogy(w - k, 1 - mu)))
    if fam == "poisson":
        return float(np.sum(w * (xlogy(y, mu) - mu - gammaln(y + 1))))
    if fam == "gaussian":  # sigma^2 = dev / n, as R's gaussian()$aic
        n = len(y)
        return float(-0.5 * (n * (math.log(2 * math.pi * dev / n) + 1) - np.sum(np.log(w))))
    if fam == "gamma":  # shape 1/phi, phi = dev / sum(w), as R's Gamma()$aic
        k = np.sum(w) / dev
        return float(np.sum(w * (k * np.log(k * y / mu) - k * y / mu - np.log(y) - gammaln(k))))
    raise ValueError(fam)


def close(a, b, rtol, what, name):
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    err = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
    if not err <= rtol:
        raise SystemExit("%s: %s differs, relative %.3g\n  csv: %s\n json: %s" % (name, what, err, a, b))
    return err


def verify_glm(outdir, name, meta, cols, header):
    fam, link = meta["family"], meta["link"]
    wcol, ocol = meta["weight_column"], meta["offset_column"]
    xnames = meta["names"][1:]
    assert meta["names"][0] == "(Intercept)" and meta["intercept"] is True
    expect = ["y"] + xnames + ([wcol] if wcol else []) + ([ocol] if ocol else [])
    assert header == expect, (header, expect)
    y = cols["y"]
    n = len(y)
    assert n == meta["n_obs"]
    X = np.column_stack([np.ones(n)] + [cols[c] for c in xnames])
    w = cols[wcol] if wcol else np.ones(n)
    off = cols[ocol] if ocol else np.zeros(n)
    beta = np.array(meta["coefficients"])
    p = len(beta)
    eta = X @ beta + off
    linkinv, mu_eta = LINKS[link]
    mu = linkinv(eta)
    dmu = mu_eta(eta)
    V = VARIANCE[fam](mu)
    nz = int(np.sum(w != 0))

    dev = float(np.sum(w * unit_deviance(fam, y, mu)))
    ll = loglik(fam, y, mu, w, dev)
    # null model: intercept only (+ offset); its MLE is the weighted mean of y
    # without an offset, and for log-link Poisson closed form with one.
    if not ocol:
        mu0 = np.full(n, np.sum(w * y) / np.sum(w))
    elif fam == "poisson" and link == "log":
        mu0 = np.exp(off) * np.sum(w * y) / np.sum(w * np.exp(off))
    else:
        raise SystemExit(name + ": no null model for this offset case")
    null_dev = float(np.sum(w * unit_deviance(fam, y, mu0)))
    extra = 1 if fam in ("gaussian", "gamma") else 0
    aic = -2 * ll + 2 * (p + extra)
    bic = -2 * ll + math.log(nz) * (p + extra)
    df = nz - p
    disp = float(np.sum(w * (y - mu) ** 2 / V) / df) if extra else 1.0

    u = w * (y - mu) / V * dmu
    score = X.T @ u
    rel_score = float(np.max(np.abs(score) / (np.abs(X).T @ np.abs(u))))
    if rel_score > 1e-9:
        raise SystemExit("%s: score at the JSON coefficients is not zero (%g)" % (name, rel_score))
    F = X.T @ (X * (w * dmu * dmu / V)[:, None])
    Finv = np.linalg.inv(F)
    Bm = (X * u[:, None]).T @ (X * u[:, None])
    se = np.sqrt(np.diag(Finv) * disp)
    robust = np.sqrt(np.diag(Finv @ Bm @ Finv))

    errs = [
        close(ll, meta["log_likelihood"], 1e-11, "log_likelihood", name),
        close(dev, meta["deviance"], 1e-10, "deviance", name),
        close(null_dev, meta["null_deviance"], 1e-10, "null_deviance", name),
        close(aic, meta["aic"], 1e-11, "aic", name),
        close(bic, meta["bic"], 1e-11, "bic", name),
        close(disp, meta["dispersion"], 1e-10, "dispersion", name),
        close(se, meta["std_errors"], 1e-9, "std_errors", name),
        close(robust, meta["robust_std_errors"], 1e-9, "robust_std_errors", name),
    ]
    assert df == meta["df_residual"]
    sep = ""
    if fam == "binomial":
        lp = separation_lp_binomial(X, y, w)
        if lp > 1e-9:
            raise SystemExit("%s: data are (quasi-)separated, LP value %g" % (name, lp))
        sep = " no-separation(LP)"
    if fam == "poisson" and np.any(y == 0):
        raise SystemExit(name + ": zero counts; check MLE existence")
    print("verified %-34s max rel err %.1e |score|rel %.1e%s" % (name, max(errs), rel_score, sep))


def verify_multinomial(outdir, name, meta, cols, header):
    xnames = [s.rsplit(":", 1)[0] for s in meta["names"]]
    K = meta["n_classes"]
    d = len(xnames) // (K - 1)
    assert xnames[0] == "(Intercept)" and header == ["y"] + xnames[1:d]
    y = cols["y"].astype(int)
    assert np.all(y == cols["y"]) and y.min() == 0 and y.max() == K - 1
    n = len(y)
    assert n == meta["n_obs"]
    X = np.column_stack([np.ones(n)] + [cols[c] for c in xnames[1:d]])
    beta = np.array(meta["coefficients"])
    ll, score, F, Bm, P = multinomial_pieces(X, y, beta, K)
    Finv = np.linalg.inv(F)
    counts = np.bincount(y, minlength=K)
    llnull = float(np.sum(counts * np.log(counts / n)))
    q = len(beta)
    rel_score = float(np.max(np.abs(score)) / n)
    if rel_score > 1e-9:
        raise SystemExit("%s: score at the JSON coefficients is not zero (%g)" % (name, rel_score))
    errs = [
        close(ll, meta["log_likelihood"], 1e-11, "log_likelihood", name),
        close(-2 * ll, meta["deviance"], 1e-11, "deviance", name),
        close(-2 * llnull, meta["null_deviance"], 1e-11, "null_deviance", name),
        close(-2 * ll + 2 * q, meta["aic"], 1e-11, "aic", name),
        close(-2 * ll + math.log(n) * q, meta["bic"], 1e-11, "bic", name),
        close(np.sqrt(np.diag(Finv)), meta["std_errors"], 1e-8, "std_errors", name),
        close(np.sqrt(np.diag(Finv @ Bm @ Finv)), meta["robust_std_errors"], 1e-9,
              "robust_std_errors", name),
    ]
    assert meta["df_residual"] == n - q and meta["dispersion"] == 1
    lp = separation_lp_multinomial(X, y, K)
    if lp > 1e-9:
        raise SystemExit("%s: classes (quasi-)separable, LP value %g" % (name, lp))
    print("verified %-34s max rel err %.1e |score|/n %.1e no-separation(LP)"
          % (name, max(errs), rel_score))


def verify_all(outdir):
    names = sorted(f[:-5] for f in os.listdir(outdir) if f.endswith(".json"))
    if not names:
        raise SystemExit("no fixtures in " + outdir)
    for name in names:
        meta, cols, header = read_fixture(outdir, name)
        if meta["family"] == "multinomial":
            verify_multinomial(outdir, name, meta, cols, header)
        else:
            verify_glm(outdir, name, meta, cols, header)
    print("all %d fixtures verified" % len(names))


def main(argv):
    verify_only = "--verify-only" in argv
    args = [a for a in argv if a != "--verify-only"]
    outdir = args[0] if args else os.path.join("tests", "fixtures", "glm")
    os.makedirs(outdir, exist_ok=True)
    if not verify_only:
        make_wine(outdir, "multinomial_wine", standardize=False)
        make_wine(outdir, "multinomial_wine_scaled", standardize=True)
    verify_all(outdir)


if __name__ == "__main__":
    main(sys.argv[1:])
