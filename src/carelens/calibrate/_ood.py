"""Out-of-distribution gate: is this input like the images the model was trained on?

Signals on what the network sees: distances of the pooled backbone features to the training data
(Mahalanobis to the nearest class mean with one shared covariance, and the cosine distance to
the k-th nearest training feature), and the energy of the logits (Liu et al. 2020). The covariance is the
Ledoit-Wolf estimate, modelled as probabilistic PCA (Tipping & Bishop 1999): its ``components`` leading
directions with their own variances, every other direction with their mean variance, so the distance is the
whitened distance in the leading subspace plus the residual's length off it, scaled. Each is
standardised on in-distribution validation images and the largest is the combined score. Measured
here (bench/results/ood_*.json): Mahalanobis alone missed natural photos with the EfficientNet
features of BUSI, k-NN alone failed with the small CNN of PneumoniaMNIST; the default "combined"
takes both, so neither blind spot decides.
The threshold passes ``pass_rate`` (95%) of in-distribution images, and with ``confidence`` (the default, 0.95)
that is held with that probability over the draw of the validation images rather than only on average: the
threshold is the smallest validation score whose rank makes the share it passes, a Beta(k, n + 1 - k) variable, at
least ``pass_rate`` with probability ``confidence`` (training-conditional validity: Vovk 2012, *Conditional validity
of inductive conformal predictors*). A plain 95% quantile passed 0.945-0.954 of test images over 3 HAM10000 seeds;
the price is a threshold a little further out (about the 96th percentile with 1,000 validation images). A single
input's ``ood_score`` is its in-distribution p-value: the share of validation images that look at least as
unusual. High means typical.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from carelens.errors import ConfigError
from carelens.validation import check_features, check_is_fitted, check_logits

__all__ = ["OODGate", "OODMethod", "conservative_rank"]

OODMethod = Literal["mahalanobis", "knn", "combined"]
# Leading directions the Mahalanobis distance models one by one (the rest share one variance), and training features
# kept for the k-NN distance (a seeded sample beyond this). Measured on 4 training seeds of the chosen HAM10000 recipe
# (`python bench/ood_size.py`, case ood_size_ham10000; worst seed): the full covariance (1,664 directions) with 2,000
# training features, the gate before, separated far AUROC 0.9996, near 0.9987, test pass rate 0.960, and took 1.50 ms
# for one image after a model run, reading 25 MB; 128 directions with 1,000 features: 0.9999, 0.9995, 0.960 in 0.65
# ms (64-256 directions alike; the residual off the leading directions is itself a strong signal). PneumoniaMNIST
# (256 features): far 0.9972 -> 0.9978, near 0.9967 both, 0.64 -> 0.36 ms.
COMPONENTS = 128
BANK_MAX = 1000


def conservative_rank(n: int, pass_rate: float, confidence: float) -> int:
    """The smallest rank k (1-based) such that the k-th smallest of ``n`` validation scores, used as the threshold,
    passes at least ``pass_rate`` of new in-distribution inputs with probability ``confidence`` over the draw of the
    validation set (the share it passes is Beta(k, n + 1 - k) distributed); ``n`` when no rank is enough (too few
    validation images for the guarantee: the largest score is the best there is)."""
    from scipy.stats import beta

    ks = np.arange(1, n + 1)
    enough = np.nonzero(beta.cdf(pass_rate, ks, n + 1 - ks) <= 1 - confidence)[0]
    return int(ks[enough[0]]) if len(enough) else n


class OODGate:
    _zm: np.ndarray | None = None  # the whitened class means (full covariance), computed once
    # the class means in the PCA basis, in float64, and their squared lengths, computed once
    _pm: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __init__(self, method: OODMethod = "combined", pass_rate: float = 0.95, k: int = 10,
                 use_energy: bool = True, confidence: float | None = 0.95, bank_max: int = BANK_MAX,
                 components: int | None = COMPONENTS) -> None:
        self.method = method
        self.pass_rate = pass_rate
        self.k = k
        self.use_energy = use_energy
        self.confidence = confidence  # None: the plain pass_rate quantile of the validation scores
        self.bank_max = bank_max  # for fitting; a fitted gate's bank is what it holds
        self.components = components  # None: the full covariance (for fitting, as bank_max)

    # -- raw scores ----------------------------------------------------------------------------
    @property
    def _parts(self) -> list[str]:
        parts = ["mahalanobis", "knn"] if self.method == "combined" else [self.method]
        return parts + (["energy"] if self.use_energy else [])

    def _raw(self, part: str, f: np.ndarray, logits: np.ndarray) -> np.ndarray:
        stats = getattr(self, "basis_", getattr(self, "whiten_", None))
        if part != "energy" and stats is not None and stats.dtype == np.float32:
            f = f.astype(np.float32)
        if part == "mahalanobis":
            return np.sqrt(np.maximum(self._mahalanobis2(f).min(1), 0.0))  # type: ignore[no-any-return]
        if part == "knn":
            fn = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
            sims = fn @ self.bank_.T  # cosine similarity to the training features
            k = min(self.k, self.bank_.shape[0])
            kth = np.partition(-sims, k - 1, axis=1)[:, k - 1]
            return 1.0 + kth  # 1 - cos of the k-th nearest
        # energy: -logsumexp over classes, in numpy (scipy's logsumexp costs 0.28 ms per single-image call here)
        z = np.asarray(logits, dtype=np.float64)
        m = z.max(axis=1)
        return -(m + np.log(np.exp(z - m[:, None]).sum(axis=1)))  # type: ignore[no-any-return]

    def _mahalanobis2(self, f: np.ndarray) -> np.ndarray:
        """(n, k) squared distances (f - mu_c)^T P (f - mu_c) to each class mean."""
        if not hasattr(self, "basis_"):  # the full covariance, via its whitening W (P = W W^T)
            zf = f @ self.whiten_  # (n, d)
            zm = self._zm
            if zm is None:
                zm = self._zm = self.means_ @ self.whiten_  # (k, d)
            return (zf**2).sum(1)[:, None] - 2 * zf @ zm.T + (zm**2).sum(1)[None, :]  # type: ignore[no-any-return]
        # probabilistic PCA: the leading directions whitened one by one, the residual off them at its one variance
        if self._pm is None:
            m64 = self.means_.astype(np.float64)
            self._pm = ((self.means_ @ self.basis_).astype(np.float64), m64, (m64**2).sum(1))  # (k, r), (k, d), (k,)
        pm, m64, m_sq = self._pm
        proj2 = ((f @ self.basis_).astype(np.float64)[:, None, :] - pm[None]) ** 2  # (n, k, r)
        f64 = f.astype(np.float64)
        whole = (f64**2).sum(1)[:, None] - 2 * f64 @ m64.T + m_sq[None, :]  # |f - mu_c|^2
        inside = proj2.sum(2)
        return (proj2 * self.inv_var_).sum(2) + np.maximum(whole - inside, 0.0) / self.residual_var_  # type: ignore[no-any-return]

    def _combined(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        zs = [(self._raw(p, features, logits) - self.stats_[p][0]) / self.stats_[p][1] for p in self._parts]
        return np.max(np.stack(zs), axis=0)  # type: ignore[no-any-return]

    # -- estimator API ---------------------------------------------------------------------------
    def fit(self, train_features: np.ndarray, train_y: np.ndarray, val_features: np.ndarray,
            val_logits: np.ndarray) -> OODGate:
        """Model the training features; set the threshold on validation (in-distribution) images."""
        if self.method not in ("mahalanobis", "knn", "combined"):
            raise ConfigError(f"method must be 'mahalanobis', 'knn' or 'combined', got {self.method!r}")
        if not 0.5 < self.pass_rate < 1:
            raise ConfigError(f"pass_rate must be in (0.5, 1), got {self.pass_rate}")
        if self.confidence is not None and not 0.5 <= self.confidence < 1:
            raise ConfigError(f"confidence must be in [0.5, 1) or None, got {self.confidence}")
        if self.bank_max < self.k:
            raise ConfigError(f"bank_max must be at least k ({self.k}) training features, got {self.bank_max}")
        if self.components is not None and self.components < 1:
            raise ConfigError(f"components must be a positive number of directions or None, got {self.components}")
        ft = check_features(train_features)
        fv = check_features(val_features)
        lv = check_logits(val_logits)
        self._zm = None  # the class means' projections, cached by the scores: not a previous fit's
        self._pm = None
        y = np.asarray(train_y, dtype=np.int64)
        if self.method in ("mahalanobis", "combined"):
            from sklearn.covariance import LedoitWolf

            classes = np.unique(y)
            self.means_ = np.stack([ft[y == c].mean(0) for c in classes])
            centred = ft - self.means_[np.searchsorted(classes, y)]
            # store_precision=False: its pseudo-inverse (a float64 eigendecomposition: 6.3 of 7.8 s here with 1,664
            # features) is never used, the whitening below is the one inverse needed
            cov = LedoitWolf(assume_centered=True, store_precision=False).fit(centred).covariance_
            evals, evecs = np.linalg.eigh(cov)  # ascending
            evals = np.maximum(evals, 1e-9)
            r = self.components
            for stale in ("whiten_", "basis_", "inv_var_", "residual_var_"):  # a previous fit's, of the other kind
                self.__dict__.pop(stale, None)
            if r is None or r >= len(evals):
                self.whiten_ = evecs / np.sqrt(evals)  # (d, d): cov^-1/2 up to rotation
            else:
                self.basis_ = evecs[:, ::-1][:, :r].copy()  # (d, r) the leading directions
                self.inv_var_ = 1.0 / evals[::-1][:r]
                self.residual_var_ = float(evals[:-r].mean())  # every other direction's, pooled
        if self.method in ("knn", "combined"):
            keep = self.bank_max
            bank = ft if len(ft) <= keep else ft[np.random.default_rng(0).choice(len(ft), keep, replace=False)]
            self.bank_ = bank / np.maximum(np.linalg.norm(bank, axis=1, keepdims=True), 1e-12)
        self.stats_: dict[str, tuple[float, float]] = {}
        for part in self._parts:
            v = self._raw(part, fv, lv)
            self.stats_[part] = (float(v.mean()), float(v.std() + 1e-12))
        self.val_scores_ = np.sort(self._combined(fv, lv))
        if self.confidence is None:
            self.threshold_ = float(np.quantile(self.val_scores_, self.pass_rate))
        else:
            k = conservative_rank(len(self.val_scores_), self.pass_rate, self.confidence)
            self.threshold_ = float(self.val_scores_[k - 1])
        return self

    def _check(self) -> None:
        check_is_fitted(self, "threshold_", "call fit(...) with training and validation features")

    def shortfall(self) -> str | None:
        """Why this gate cannot hold its pass rate with its ``confidence`` (too few validation images: even the largest
        score, its threshold then, is not enough), or None."""
        self._check()
        n = len(self.val_scores_)
        if self.confidence is None or self.pass_rate**n <= 1 - self.confidence:  # the n-th of n passes Beta(n, 1)
            return None
        return (f"{n} validation images are too few for the OOD gate to pass {self.pass_rate:.0%} of in-distribution "
                f"inputs with probability {self.confidence:.0%}: its threshold is the largest validation score")

    def score(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Combined score: higher is more unusual; above ``threshold_`` is out of distribution."""
        self._check()
        return self._combined(check_features(features), check_logits(logits))

    def p_value(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Share of validation images at least as unusual (the ``ood_score`` of an assessment)."""
        return self.p_value_of(self.score(features, logits))

    def p_value_of(self, s: np.ndarray) -> np.ndarray:
        n = len(self.val_scores_)
        above = n - np.searchsorted(self.val_scores_, s, side="left")
        return (above + 1) / (n + 1)

    def is_in_distribution(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return self.score(features, logits) <= self.threshold_

    # -- persistence: parameters as JSON (to_dict), statistics as arrays (save, ood.npz) -------------
    def save(self, path: str | Path) -> None:
        """Write the fitted statistics (class means, whitening or PCA basis, k-NN bank, validation scores) to
        ``path``."""
        self._check()
        arrays: dict[str, Any] = {"val_scores": self.val_scores_.astype(np.float64)}
        arrays.update({f"stats_{p}": np.asarray(s) for p, s in self.stats_.items()})
        if hasattr(self, "basis_"):
            arrays.update(means=self.means_.astype(np.float32), basis=self.basis_.astype(np.float32),
                          inv_var=self.inv_var_.astype(np.float64), residual_var=np.float64(self.residual_var_))
        elif hasattr(self, "means_"):
            arrays.update(means=self.means_.astype(np.float32), whiten=self.whiten_.astype(np.float32))
        if hasattr(self, "bank_"):
            arrays.update(bank=self.bank_.astype(np.float32))
        np.savez_compressed(path, **arrays)

    def to_dict(self) -> dict[str, Any]:
        """The parameters and threshold (the arrays go to :meth:`save`)."""
        self._check()
        return {"method": self.method, "pass_rate": self.pass_rate, "k": self.k, "use_energy": self.use_energy,
                "threshold": self.threshold_, "confidence": self.confidence,
                "components": self.basis_.shape[1] if hasattr(self, "basis_") else None}

    @classmethod
    def from_dict(cls, params: Mapping[str, Any], arrays: str | Path) -> OODGate:
        """A fitted gate from :meth:`to_dict` and the statistics file written by :meth:`save`."""
        g = cls(params["method"], params["pass_rate"], params["k"], params["use_energy"], params.get("confidence"),
                components=params.get("components"))  # the statistics file decides; this only records it
        with np.load(arrays) as z:
            g.val_scores_ = z["val_scores"]
            g.stats_ = {k[6:]: (float(z[k][0]), float(z[k][1])) for k in z.files if k.startswith("stats_")}
            # float32 at serving time: half the memory traffic per call; scores are standardised anyway
            if "basis" in z.files:
                g.means_, g.basis_ = z["means"].astype(np.float32), z["basis"].astype(np.float32)
                g.inv_var_, g.residual_var_ = z["inv_var"].astype(np.float64), float(z["residual_var"])
            elif "means" in z.files:  # the full covariance (every bundle before COMPONENTS, or components=None)
                g.means_, g.whiten_ = z["means"].astype(np.float32), z["whiten"].astype(np.float32)
            if "bank" in z.files:
                g.bank_ = z["bank"].astype(np.float32)
        g.threshold_ = float(params["threshold"])
        return g
