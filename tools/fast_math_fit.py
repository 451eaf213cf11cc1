#!/usr/bin/python3
"""Prints the polynomial coefficients of kernels/fast_math.h, each set a
minimax fit of the relative error (Lawson's iteratively reweighted least
squares on Chebyshev nodes, the function evaluated with mpmath at 40
digits), rounded to float32, lowest degree first, with the fit's maximum
relative error before rounding.

    /usr/bin/python3 tools/fast_math_fit.py

tanh:  tanh x = x + x^3 P(x^2)            for |x| < 0.55, 5 terms
erf:   erf x = x Q(x^2)                    for |x| < 1, 7 terms
erfc:  erfc x = e^(-x^2) t R(t), t = 2 / (2 + x), for 1 <= x <= 9.4, 8 terms
"""
import mpmath as mp
import numpy as np

mp.mp.dps = 40


def minimax(f, basis, low, high, weight, nodes=2000, iterations=200):
    """Coefficients c minimising max |weight(x) (sum c_j basis_j(x) - f(x))|."""
    xs = [mp.mpf(low) + (mp.mpf(high) - low) * (1 - mp.cos(mp.pi * (k + 0.5) / nodes)) / 2
          for k in range(nodes)]
    a = np.array([[float(b(x)) for b in basis] for x in xs])
    y = np.array([float(f(x)) for x in xs])
    w = np.array([float(weight(x)) for x in xs])
    lawson = np.full(nodes, 1.0 / nodes)
    for _ in range(iterations):
        scale = np.sqrt(lawson) * w
        c = np.linalg.lstsq(a * scale[:, None], y * scale, rcond=None)[0]
        error = np.abs((a @ c - y) * w)
        lawson = lawson * error
        lawson /= lawson.sum()
    return c, error.max()


def powers(step, count):
    return [(lambda j: (lambda x: x ** (step * j)))(j) for j in range(count)]


def show(name, c, error):
    print(f"{name}: max relative error {error:.3g}")
    print("  " + ", ".join(str(np.float32(v)) + "f" for v in c))


def main():
    # (tanh x - x) / x^3, weighted so the error is relative to tanh x
    show("tanh P", *minimax(lambda x: (mp.tanh(x) - x) / x ** 3, powers(2, 5), 1e-4, 0.55,
                            lambda x: x ** 3 / mp.tanh(x)))
    show("erf Q", *minimax(lambda x: mp.erf(x) / x, powers(2, 7), 1e-4, 1.0, lambda x: 1))
    tail = (lambda x: mp.erfc(x) * mp.exp(x * x) * (1 + x / 2))
    show("erfc R", *minimax(tail, [(lambda j: (lambda x: (2 / (2 + x)) ** j))(j) for j in range(8)],
                            1.0, 9.4, lambda x: 1 / tail(x)))


if __name__ == "__main__":
    main()
