#!/usr/bin/env python3
"""The seed's own numpy experiment (natural-gradient-descent.md), run as written:
100 repetitions, 5 iterations, learning rate 1, NGD with F = np.cov(scores) vs vanilla
GD. Prints mean and population std of the training loss after 5 updates, the numbers
`natgrad demo` reports. Needs python3-numpy (Debian). Usage: python3 seed_numpy.py [seed]
"""
import sys

import numpy as np


def sigm(x):
    return 1 / (1 + np.exp(-x))


def nll(y, t):
    return -np.mean(t * np.log(y) + (1 - t) * np.log(1 - y))


def main(seed=0, reps=100, iters=5, alpha=1.0):
    rs = np.random.RandomState(seed)
    final = {"ngd": [], "gd": []}
    for _ in range(reps):
        X = np.vstack([rs.randn(100, 2) - 1, rs.randn(100, 2) + 1])
        t = np.vstack([np.zeros([100, 1]), np.ones([100, 1])])
        perm = rs.permutation(200)  # sklearn.utils.shuffle
        X, t = X[perm], t[perm]
        Xtr, ttr, m = X[:150], t[:150], 150
        W0 = rs.randn(2, 1) * 0.01
        for method in ("ngd", "gd"):
            W = W0.copy()
            for _ in range(iters):
                y = sigm(Xtr @ W)
                dW = Xtr.T @ (y - ttr) / m
                if method == "gd":
                    W = W - alpha * dW
                else:
                    F = np.cov(((ttr - y) * Xtr).T)
                    W = W - alpha * np.linalg.inv(F) @ dW
            final[method].append(nll(sigm(Xtr @ W), ttr))
    for method, name in (("ngd", "Natural Gradient Descent"), ("gd", "Vanilla Gradient Descent")):
        v = np.array(final[method])
        print(f"{name:26s} {v.mean():.4f} {v.std():.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
