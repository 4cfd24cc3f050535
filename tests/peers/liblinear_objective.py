#!/usr/bin/python3
"""LIBLINEAR's L2-regularised logistic objective, evaluated by one piece of code for a
LIBLINEAR model file and for natgrad's model.json (tests/peers/liblinear_parity.sh).

usage:
  liblinear_objective.py eval DATA.svm --C C (--liblinear MODEL | --natgrad MODEL.json) --out W.json
      Writes W.json: {"objective": f(w), "grad_inf": max |grad f(w)|, "bias": b or null,
      "w": {"<index>": w_index}} with
          f(w) = 0.5 (w^T w + b^2) + C sum_i log(1 + exp(-y_i (w^T x_i + b)))
      (the b terms only when the model has a bias / intercept), y_i = +1 for the larger
      of the file's two labels (1 of 0/1, +1 of -1/+1), else -1: the coefficients of both
      tools in the same orientation. LIBLINEAR's w scores its first label (its model's
      "label" line) as the positive class: negated when that is the smaller label.
      natgrad's coefficients are named x<index> (LIBSVM index, 1-based) and "(Intercept)".
  liblinear_objective.py compare A.json B.json --obj-rtol R --coef-tol T
      Exit 0 when |f_A - f_B| <= R |f_B| and max_j |w_A,j - w_B,j| <= T max(1, max_j |w_B,j|)
      (the bias included); prints both objectives, the largest coefficient difference and
      the gradients' sup norms either way.

Pure Python (no numpy): math.fsum sums, a stable log(1 + exp(-m)).
"""
import argparse
import json
import math
import sys


def read_svm(path):
    rows, labels = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            labels.append(float(parts[0]))
            x = []
            for tok in parts[1:]:
                k, _, v = tok.partition(":")
                if not v:
                    sys.exit(f"{path}:{n}: '{tok}': expected index:value")
                x.append((int(k), float(v)))
            rows.append(x)
    distinct = sorted(set(labels))
    if len(distinct) != 2:
        sys.exit(f"{path}: {len(distinct)} distinct labels {distinct[:5]}: expected two")
    return rows, labels, distinct[1]


def read_liblinear(path, positive):
    header, w = {}, []
    with open(path) as f:
        for line in f:
            if line.strip() == "w":
                break
            k, _, v = line.strip().partition(" ")
            header[k] = v
        for line in f:
            if line.strip():
                w.append(float(line.split()[0]))
    if header.get("solver_type") != "L2R_LR":
        sys.exit(f"{path}: solver_type {header.get('solver_type')}, expected L2R_LR (-s 0)")
    n = int(header["nr_feature"])
    bias = float(header.get("bias", "-1"))
    if len(w) != n + (1 if bias >= 0 else 0):
        sys.exit(f"{path}: {len(w)} weights for nr_feature {n} and bias {bias}")
    sign = 1.0 if float(header["label"].split()[0]) == positive else -1.0
    coef = {j + 1: sign * w[j] for j in range(n)}
    # LIBLINEAR's bias feature has value B: its term is w_b B, penalised as w_b^2 / 2.
    b = sign * w[n] * bias if bias >= 0 else None
    if bias >= 0 and bias != 1:
        sys.exit(f"{path}: bias {bias}: only -B 1 is an intercept")
    return coef, b


def read_natgrad(path):
    with open(path) as f:
        j = json.load(f)
    coef, b = {}, None
    for name, t in zip(j["columns"], j["coefficients"]):
        t = 0.0 if t is None else float(t)
        if name == "(Intercept)":
            b = t
        elif name.startswith("x"):
            coef[int(name[1:])] = t
        else:
            sys.exit(f"{path}: column name {name!r}, expected x<index> or (Intercept)")
    return coef, b


def log1pexp_neg(m):
    """log(1 + exp(-m)) without overflow."""
    return math.log1p(math.exp(-m)) if m > 0 else -m + math.log1p(math.exp(m))


def evaluate(a):
    rows, labels, positive = read_svm(a.data)
    coef, b = read_liblinear(a.liblinear, positive) if a.liblinear else read_natgrad(a.natgrad)
    losses, grad = [], {}
    gb = []
    for x, lab in zip(rows, labels):
        y = 1.0 if lab == positive else -1.0
        m = y * (math.fsum(v * coef.get(k, 0.0) for k, v in x) + (b or 0.0))
        losses.append(log1pexp_neg(m))
        s = -a.C * y * 0.5 * (1 - math.tanh(0.5 * m))  # d/d(w^T x) of C log(1 + exp(-m))
        for k, v in x:
            grad.setdefault(k, []).append(s * v)
        gb.append(s)
    penalty = math.fsum(w * w for w in coef.values()) + (b * b if b is not None else 0.0)
    f = 0.5 * penalty + a.C * math.fsum(losses)
    g = [abs(coef.get(k, 0.0) + math.fsum(v)) for k, v in grad.items()]
    g += [abs(w) for k, w in coef.items() if k not in grad]
    if b is not None:
        g.append(abs(b + math.fsum(gb)))
    out = {"objective": f, "grad_inf": max(g), "bias": b, "w": {str(k): v for k, v in sorted(coef.items())}}
    with open(a.out, "w") as f_out:
        json.dump(out, f_out)
    print(f"objective={f:.17g} grad_inf={max(g):.3e}")


def compare(a):
    with open(a.a) as f:
        A = json.load(f)
    with open(a.b) as f:
        B = json.load(f)
    why = []
    if (A["bias"] is None) != (B["bias"] is None):
        why.append("one model has a bias, the other none")
    keys = set(A["w"]) | set(B["w"])
    diff = max(abs(A["w"].get(k, 0.0) - B["w"].get(k, 0.0)) for k in keys)
    big = max([1.0] + [abs(v) for v in B["w"].values()])
    if A["bias"] is not None and B["bias"] is not None:
        diff = max(diff, abs(A["bias"] - B["bias"]))
        big = max(big, abs(B["bias"]))
    rel = abs(A["objective"] - B["objective"]) / abs(B["objective"])
    print(f"objective {A['objective']:.17g} vs {B['objective']:.17g} (relative {rel:.2e}); "
          f"max coefficient difference {diff:.2e} (scale {big:.3g}); "
          f"grad_inf {A['grad_inf']:.2e} vs {B['grad_inf']:.2e}")
    if not rel <= a.obj_rtol:
        why.append(f"objectives differ by {rel:.2e} relative (> {a.obj_rtol:g})")
    if not diff <= a.coef_tol * big:
        why.append(f"coefficients differ by {diff:.2e} (> {a.coef_tol:g} x {big:.3g})")
    if why:
        print("; ".join(why))
        sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("data")
    e.add_argument("--C", type=float, required=True)
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--liblinear")
    g.add_argument("--natgrad")
    e.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--obj-rtol", type=float, default=1e-8)
    c.add_argument("--coef-tol", type=float, default=1e-5)
    a = p.parse_args()
    evaluate(a) if a.cmd == "eval" else compare(a)


if __name__ == "__main__":
    main()
