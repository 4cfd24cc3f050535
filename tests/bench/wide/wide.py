#!/usr/bin/python3
"""Helpers of the wide/sparse benchmark (tests/bench/wide/run.sh, issue 13).

usage:
  wide.py generate OUT.svm --rows R --cols C --nnz K [--seed S] [--zipf A]
      A deterministic sparse logistic dataset in LIBSVM format (1-based indices, labels
      -1/+1) and OUT.svm.meta (rows, cols, nnz). Column frequencies are Zipf-like
      (column j of a random permutation is drawn with probability ~ 1/(rank)^A); each row
      has exactly K distinct columns; values are positive, each row scaled to unit L2 norm
      (as tf-idf text features are); labels ~ Bernoulli(sigmoid(x^T beta)) with
      beta_j ~ N(0, 4). The same rows for the same arguments, on any machine with the same
      numpy. (Meant to be replaced by `natgrad generate gen:sparse-logit:...` once that
      can write LIBSVM.)
  wide.py meta FILE.svm
      Writes FILE.svm.meta (rows, cols = largest index, nnz) for a file written elsewhere.
  wide.py sklearn FILE.svm --solver lbfgs|newton-cholesky --C C --tol T --max-iter M --coef OUT.npy
      Fits L2-regularised logistic regression without intercept (scikit-learn's objective
      0.5 w^T w + C sum log(1 + exp(-y w^T x)), LIBLINEAR's) and saves w; prints the
      load and fit seconds.
  wide.py objective FILE.svm --C C (--liblinear MODEL | --natgrad MODEL.json | --npy W.npy)
      Prints  objective=<f(w)> grad_inf=<max |grad f(w)|> nnz_w=<nonzero coefficients>  with
      f(w) = 0.5 w^T w + C sum_i log(1 + exp(-y_i w^T x_i)), computed here by the same
      code for every tool. natgrad minimises sum nll + l2/2 |theta|^2 = f(theta) / C for
      l2 = 1/C (labels -1/+1 read as 0/1), so its theta is evaluated as is.
  wide.py table RESULTS.csv
      Prints the markdown table of one run (per dataset: time, objective, relative gap to
      the best objective of that dataset, time ratio against LIBLINEAR).
"""
import argparse
import csv
import json
import math
import sys
import time

import numpy as np


def read_meta(path):
    meta = {}
    with open(path + ".meta") as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                meta[k] = v
    return meta


def write_meta(path, rows, cols, nnz, source):
    with open(path + ".meta", "w") as f:
        f.write(f"rows={rows}\ncols={cols}\nnnz={nnz}\nsource={source}\n")


def load(path):
    """X (CSR, float64, n x cols of the .meta) and y in {-1, +1}."""
    from sklearn.datasets import load_svmlight_file
    cols = int(read_meta(path)["cols"])
    X, y = load_svmlight_file(path, n_features=cols, dtype=np.float64, zero_based=False)
    labels = set(np.unique(y).tolist())
    if not labels <= {-1.0, 1.0}:
        sys.exit(f"{path}: labels {sorted(labels)[:5]}: expected -1/+1")
    return X.tocsr(), y


# ---- generate -------------------------------------------------------------------------

def generate(a):
    from scipy import sparse
    n, p, k = a.rows, a.cols, a.nnz
    if k > p:
        sys.exit(f"--nnz {k} > --cols {p}")
    rng = np.random.default_rng(a.seed)
    perm = rng.permutation(p)                      # column of frequency rank r: perm[r]
    w = 1.0 / np.arange(1, p + 1, dtype=np.float64) ** a.zipf
    cdf = np.cumsum(w)
    cdf /= cdf[-1]

    def draw(m):
        return perm[np.minimum(np.searchsorted(cdf, rng.random(m), side="right"), p - 1)]

    # Exactly k distinct columns per row: draw, keep the distinct (row, column) pairs,
    # draw again for the rows still short, then keep k per row chosen at random.
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    keys = np.unique(rows * p + draw(n * k))
    for _ in range(1000):
        count = np.bincount(keys // p, minlength=n)
        short = np.flatnonzero(count < k)
        if short.size == 0:
            break
        extra = np.repeat(short, 2 * (k - count[short]))
        keys = np.unique(np.concatenate([keys, extra * p + draw(extra.size)]))
    else:
        sys.exit("generate: could not draw distinct columns (lower --zipf)")
    r, c = keys // p, keys % p
    order = np.lexsort((rng.random(r.size), r))   # by row, random within the row
    r, c = r[order], c[order]
    start = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n))[:-1]])
    rank = np.arange(r.size) - start[r]
    keep = rank < k
    r, c = r[keep], c[keep]
    v = rng.lognormal(0.0, 0.5, r.size)
    X = sparse.csr_matrix((v, (r, c)), shape=(n, p))
    X.sort_indices()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = (sparse.diags(1.0 / norms) @ X).tocsr()
    X.sort_indices()                               # LIBSVM: ascending indices in a row
    X.data = np.array([float(f"{v:.5g}") for v in X.data])  # the file's values exactly
    beta = rng.normal(0.0, 2.0, p)
    eta = X @ beta
    y = np.where(rng.random(n) < 0.5 * (1 + np.tanh(0.5 * eta)), 1, -1)
    # The largest index must occur so that every reader sees the same column count.
    with open(a.out, "w") as f:
        ind, ptr = X.indices + 1, X.indptr
        val = [f"{v:.5g}" for v in X.data]
        for i in range(n):
            lo, hi = ptr[i], ptr[i + 1]
            f.write(("1 " if y[i] > 0 else "-1 ")
                    + " ".join(f"{j}:{v}" for j, v in zip(ind[lo:hi].tolist(), val[lo:hi])) + "\n")
    cols_seen = int(X.indices.max()) + 1
    write_meta(a.out, n, p, X.nnz,
               f"wide.py generate --rows {n} --cols {p} --nnz {k} --seed {a.seed} --zipf {a.zipf}"
               f" (largest index used: {cols_seen})")
    print(f"{a.out}: {n} x {p}, {X.nnz} nonzeros, {np.mean(y > 0):.3f} positive")


def meta(a):
    n = nnz = cols = 0
    with open(a.file) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            n += 1
            nnz += len(parts) - 1
            if len(parts) > 1:
                cols = max(cols, int(parts[-1].split(":")[0]))
    write_meta(a.file, n, cols, nnz, a.source)
    print(f"{a.file}: {n} x {cols}, {nnz} nonzeros")


# ---- scikit-learn ---------------------------------------------------------------------

def fit_sklearn(a):
    import warnings
    from sklearn.linear_model import LogisticRegression
    t0 = time.perf_counter()
    X, y = load(a.data)
    t1 = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = LogisticRegression(penalty="l2", C=a.C, solver=a.solver, tol=a.tol,
                               max_iter=a.max_iter, fit_intercept=False)
        m.fit(X, y)
    t2 = time.perf_counter()
    coef = m.coef_.ravel().copy()
    if m.classes_[1] != 1:            # coef_ is for classes_[1]
        coef = -coef
    np.save(a.coef, coef)
    conv = [str(x.message).splitlines()[0] for x in w if "converge" in str(x.message).lower()]
    print(f"load_s={t1 - t0:.3f} fit_s={t2 - t1:.3f} n_iter={int(np.max(m.n_iter_))}"
          + (" note=not-converged" if conv else ""))


# ---- objective ------------------------------------------------------------------------

def read_liblinear(path, cols):
    with open(path) as f:
        header = {}
        for line in f:
            if line.strip() == "w":
                break
            k, _, v = line.strip().partition(" ")
            header[k] = v
        w = np.array([float(line.split()[0]) for line in f if line.strip()])
    if header.get("solver_type") != "L2R_LR":
        sys.exit(f"{path}: solver_type {header.get('solver_type')}, expected L2R_LR (-s 0)")
    if float(header.get("bias", "-1")) >= 0:
        sys.exit(f"{path}: trained with a bias (-B); this benchmark runs without one")
    labels = [int(float(x)) for x in header["label"].split()]
    if labels[0] == -1:               # w scores the first label as the positive class
        w = -w
    out = np.zeros(cols)
    out[:min(cols, w.size)] = w[:cols]
    return out


def read_natgrad(path, cols):
    with open(path) as f:
        j = json.load(f)
    if j.get("intercept"):
        sys.exit(f"{path}: fitted with an intercept; this benchmark runs without one")
    names = j["columns"]
    theta = np.array([0.0 if c is None else c for c in j["coefficients"]], dtype=np.float64)
    out = np.zeros(cols)
    for name, t in zip(names, theta):   # x1..xP: LIBSVM index j is column "xj"
        if not name.startswith("x"):
            sys.exit(f"{path}: column name {name!r}, expected x<index>")
        idx = int(name[1:]) - 1
        if idx < cols:
            out[idx] = t
    return out


def objective(a):
    X, y = load(a.data)
    cols = X.shape[1]
    if a.liblinear:
        w = read_liblinear(a.liblinear, cols)
    elif a.natgrad:
        w = read_natgrad(a.natgrad, cols)
    else:
        w = np.load(a.npy)
        if w.size != cols:
            sys.exit(f"{a.npy}: {w.size} coefficients, expected {cols}")
    m = y * (X @ w)
    f = 0.5 * float(w @ w) + a.C * float(np.sum(np.logaddexp(0.0, -m)))
    # d/dw: w - C X^T (y * sigmoid(-m))
    s = 0.5 * (1 + np.tanh(-0.5 * m))
    g = w - a.C * (X.T @ (y * s))
    print(f"objective={f:.17g} grad_inf={float(np.max(np.abs(g))):.3e} nnz_w={int(np.count_nonzero(w))}")


# ---- table ----------------------------------------------------------------------------

def table(a):
    with open(a.results) as f:
        recs = list(csv.DictReader(f))
    by = {}
    for r in recs:
        by.setdefault(r["dataset"], []).append(r)
    out = []
    for ds, rs in by.items():
        objs = [float(r["objective"]) for r in rs if r["objective"] not in ("", "nan")]
        best = min(objs) if objs else math.nan
        ref = [float(r["wall_s"]) for r in rs if r["tool"] == a.reference and r["status"] == "ok"]
        ref = ref[0] if ref else math.nan
        r0 = rs[0]
        out.append(f"\n### {ds}: {r0['rows']} x {r0['cols']}, {r0['nnz']} nonzeros, C = {r0['C']}"
                   f" (natgrad --l2 {r0['l2']})\n")
        out.append("| tool | status | wall s | CPU s | load1 | max RSS MiB | objective f(w) | (f - best) / best"
                   f" | max abs grad f | time / {a.reference} | note |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rs:
            o = r["objective"]
            if o not in ("", "nan"):
                gap = (float(o) - best) / abs(best) if best else 0.0
                o_s, gap_s = f"{float(o):.12g}", f"{gap:.1e}"
            else:
                o_s = gap_s = "-"
            ok = r["status"] == "ok"
            note = r["note"].replace("|", "\\|")
            ratio = f"{float(r['wall_s']) / ref:.2f}" if ok and ref == ref and ref > 0 else "-"
            wall = f"> {r['timeout_s']}" if r["status"] == "timeout" else (r["wall_s"] or "-")
            out.append(f"| {r['tool']} | {r['status']} | {wall} | {r['cpu_s'] or '-'} | {r['load1']}"
                       f" | {r['max_rss_mib'] or '-'} | {o_s}"
                       f" | {gap_s} | {r['grad_inf'] or '-'} | {ratio} | {note} |")
        out.append("\nCommands (`$DATA` the data directory, `$LOGS` the run's logs/):\n")
        for r in rs:
            out.append(f"- {r['tool']}: `{r['command']}`")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out")
    g.add_argument("--rows", type=int, required=True)
    g.add_argument("--cols", type=int, required=True)
    g.add_argument("--nnz", type=int, required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--zipf", type=float, default=1.0)
    m = sub.add_parser("meta")
    m.add_argument("file")
    m.add_argument("--source", default="")
    s = sub.add_parser("sklearn")
    s.add_argument("data")
    s.add_argument("--solver", required=True)
    s.add_argument("--C", type=float, required=True)
    s.add_argument("--tol", type=float, default=1e-8)
    s.add_argument("--max-iter", type=int, default=10000)
    s.add_argument("--coef", required=True)
    o = sub.add_parser("objective")
    o.add_argument("data")
    o.add_argument("--C", type=float, required=True)
    o.add_argument("--liblinear")
    o.add_argument("--natgrad")
    o.add_argument("--npy")
    t = sub.add_parser("table")
    t.add_argument("results")
    t.add_argument("--reference", default="liblinear")
    a = ap.parse_args()
    {"generate": generate, "meta": meta, "sklearn": fit_sklearn, "objective": objective,
     "table": table}[a.cmd](a)


if __name__ == "__main__":
    main()
