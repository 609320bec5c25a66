"""Metrics of separated stems: against references, and without them.

Every value lands in one tidy table (track, provider, stem, metric, variant, value), and the
``variant`` column names exactly what was computed, so numbers of different definitions never
share a column:

==================  ==================  ===============================================
metric              variant             definition
==================  ==================  ===============================================
``sdr`` ``isr``     ``bsseval_v4``      BSS Eval v4 as museval computes it (images,
``sir`` ``sar``                         512-tap time-invariant filters, 1 s frames,
                                        median over frames; :mod:`stemkit.analyze.bsseval`)
``nsdr``            ``global``          MDX "nSDR": 10·log10((Σs² + δ) / (Σ(s − ŝ)² + δ))
``pes`` ``eps``     ``silence``         energy of the estimate where the reference is
                                        silent, and the reverse (dB, 1 s frames;
                                        :mod:`stemkit.analyze.protocols`)
``si_sdr``          ``scale-invariant`` SI-SDR (Le Roux et al. 2019), channels joined
``leakage``         ``from_<stem>``     share of the estimate's energy that is the part
                                        of reference <stem> in its BSS Eval projection
                                        onto all references (dB; from its own stem:
                                        the target's share)
``recon_db``        ``mixture``         10·log10(Σ (x − Σ ŝ)² / Σ x²)
==================  ==================  ===============================================

Examples
--------
>>> import numpy as np
>>> s = np.random.default_rng(0).standard_normal((2, 1000))
>>> round(sdr(s, 0.9 * s), 2)
20.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from stemkit.analyze.sdr import _CHUNK, EPS, MDX_DELTA, sdr, si_sdr

if TYPE_CHECKING:
    from stemkit.analyze.bsseval import Signals

__all__ = ["EPS", "global_metrics", "reconstruction_db", "score", "sdr", "si_sdr"]


def reconstruction_db(mixture: np.ndarray, stems: list[np.ndarray]) -> float:
    """Energy of ``mixture − Σ stems`` relative to the mixture, in dB (very negative = exact).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((2, 100))
    >>> reconstruction_db(x, [0.5 * x, 0.5 * x]) < -90
    True
    """
    mix = np.asarray(mixture)
    n = min([mix.shape[-1], *(s.shape[-1] for s in stems)])
    error = power = 0.0
    for i in range(0, n, _CHUNK):
        j = min(n, i + _CHUNK)
        part = np.asarray(mix[..., i:j], np.float64)
        err = part.copy()
        for stem in stems:
            err -= stem[..., i:j]
        error += float(np.sum(err * err))
        power += float(np.sum(part * part))
    return float(10 * np.log10((error + EPS) / (power + EPS)))


def _match_channels(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    n = min(ref.shape[-1], est.shape[-1])
    est = est[..., :n]
    if est.shape[-1] < ref.shape[-1]:
        est = np.pad(est, [(0, 0), (0, ref.shape[-1] - n)])
    if est.shape[0] != ref.shape[0]:
        est = np.broadcast_to(est.mean(axis=0, keepdims=True), ref.shape)
    return np.asarray(est, np.float32)


def global_metrics(references: Signals, *estimates: Signals) -> list[dict[str, np.ndarray]]:
    """nSDR and SI-SDR of every source of each estimate set, read in blocks (bounded memory).

    The numbers of :func:`sdr` and :func:`si_sdr` on whole arrays (each source's channels
    joined), in two passes over the signals (sums and means, then the centred products), the
    references read once per pass for all sets. One ``{"nsdr": ..., "si_sdr": ...}`` per set,
    arrays of one value per source.

    Examples
    --------
    >>> import numpy as np
    >>> from stemkit.analyze.bsseval import ArraySignals
    >>> r = np.random.default_rng(0).standard_normal((2, 1000, 2))
    >>> [g["nsdr"].round(2).tolist() for g in global_metrics(ArraySignals(r), ArraySignals(0.9 * r))]
    [[20.0, 20.0]]
    """  # noqa: E501
    n_src, n_samples, n_chan = references.shape
    if not estimates:
        return []

    def rows(signals: Signals, i: int, j: int) -> np.ndarray:  # (n_src, samples x channels)
        return signals.read(i, j).reshape(n_src, -1).astype(np.float64)

    def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", a, b)

    def blocks():
        for i in range(0, n_samples, _CHUNK):
            j = min(n_samples, i + _CHUNK)
            yield rows(references, i, j), [rows(e, i, j) for e in estimates]

    sums = np.zeros((len(estimates), 4, n_src))  # Σ r, Σ e, Σ r², Σ (r − e)²
    for ref, ests in blocks():
        ref_sum, ref_power = ref.sum(axis=1), dot(ref, ref)
        for k, est in enumerate(ests):
            err = ref - est
            sums[k] += [ref_sum, est.sum(axis=1), ref_power, dot(err, err)]
    count = max(n_samples * n_chan, 1)
    means = sums[:, :2] / count  # (sets, 2, n_src)
    centred = np.zeros((len(estimates), 3, n_src))  # Σ rc·ec, Σ rc², Σ ec²
    for ref, ests in blocks():
        ref -= means[0, 0][:, None]
        ref_power = dot(ref, ref)
        for k, est in enumerate(ests):
            est -= means[k, 1][:, None]
            centred[k] += [dot(ref, est), ref_power, dot(est, est)]
    out = []
    for k in range(len(estimates)):
        cross, power, est_power = centred[k]
        alpha = cross / (power + EPS)
        target = alpha**2 * power
        noise = np.maximum(est_power - 2 * alpha * cross + target, 0.0)
        out.append(
            {
                "nsdr": 10 * np.log10((sums[k, 2] + MDX_DELTA) / (sums[k, 3] + MDX_DELTA)),
                "si_sdr": 10 * np.log10((target + EPS) / (noise + EPS)),
            }
        )
    return out


def score(
    references: Signals, estimate_sets: Mapping[str, Signals], stems: Sequence[str], sr: int
) -> dict[str, dict[str, dict[tuple[str, str], float]]]:
    """Every reference metric of every stem of every estimate set:
    ``{set: {stem: {(metric, variant): value}}}``.

    ``references`` and each set hold the same ``stems`` in order, as ``(n_stems, n_samples,
    n_channels)`` :class:`~stemkit.analyze.bsseval.Signals` (arrays wrapped in
    :class:`~stemkit.analyze.bsseval.ArraySignals`, or :class:`stemkit.audio.StemFiles`). BSS
    Eval v4 is computed jointly over the stems of a set (each estimate against all references,
    as museval does), with the references' share of the work done once for all sets
    (:class:`~stemkit.analyze.bsseval.BSSEval`), and nSDR and SI-SDR come from the same pass. A
    silent reference leaves the BSS Eval numbers out (museval refuses it), as does a silent stem
    for its own set; nSDR and SI-SDR are then computed on their own (:func:`global_metrics`).
    PES and EPS (:func:`stemkit.analyze.protocols.silence_metrics`) are there for every set,
    for the stems that have a silent frame (reference or estimate; absent otherwise): the
    silence policy of :mod:`stemkit.analyze.protocols`.

    Examples
    --------
    >>> import numpy as np
    >>> from stemkit.analyze.bsseval import ArraySignals
    >>> rng = np.random.default_rng(0)
    >>> refs = rng.standard_normal((2, 8000, 2))
    >>> sets = {"good": ArraySignals(refs + 0.1 * rng.standard_normal(refs.shape)),
    ...         "bad": ArraySignals(refs + rng.standard_normal(refs.shape))}
    >>> m = score(ArraySignals(refs), sets, ["a", "b"], 4000)
    >>> m["good"]["a"][("sdr", "bsseval_v4")] > m["bad"]["a"][("sdr", "bsseval_v4")] + 15
    True
    """
    from stemkit.analyze.bsseval import BSSEval, BSSResult

    results: dict[str, BSSResult] = {}
    scorer = BSSEval(references, window=sr, hop=sr)
    names = list(estimate_sets)
    try:
        results = dict(zip(names, scorer.evaluate(*estimate_sets.values()), strict=True))
    except ValueError:  # a silent reference (museval refuses it), or a set with a silent stem
        for name in names if scorer.ready else []:  # score the other sets one by one
            try:
                results[name] = scorer.evaluate(estimate_sets[name])[0]
            except ValueError:
                continue
    from stemkit.analyze.protocols import pes_eps, silence_metrics

    # PES and EPS from the frame statistics of the BSS Eval pass; a pass of their own only for
    # the sets BSS Eval refused
    silence = {n: pes_eps(scorer.reference_frames, r.frames) for n, r in results.items()}
    refused = [n for n in names if n not in silence]
    if refused:
        others = silence_metrics(
            references, *(estimate_sets[n] for n in refused), window=sr, hop=sr
        )
        silence |= dict(zip(refused, others, strict=True))
    rest = [name for name in estimate_sets if name not in results]
    alone = global_metrics(references, *(estimate_sets[n] for n in rest))
    singles = dict(zip(rest, alone, strict=True))
    out: dict[str, dict[str, dict[tuple[str, str], float]]] = {}
    for name in estimate_sets:
        result = results.get(name)
        one = (
            {"nsdr": result.nsdr, "si_sdr": result.si_sdr} if result is not None else singles[name]
        )
        medians = result.medians() if result is not None else {}
        out[name] = {}
        for i, stem in enumerate(stems):
            values = {
                ("nsdr", "global"): float(one["nsdr"][i]),
                ("si_sdr", "scale-invariant"): float(one["si_sdr"][i]),
            }
            for metric in ("pes", "eps"):  # only where a frame is silent
                if np.isfinite(silence[name][metric][i]):
                    values[(metric, "silence")] = float(silence[name][metric][i])
            for metric, per_source in medians.items():
                values[(metric, "bsseval_v4")] = float(per_source[i])
            if result is not None and result.leakage is not None:  # stem × leaked source
                for k, other in enumerate(stems):
                    values[("leakage", f"from_{other}")] = float(result.leakage[i, k])
            out[name][stem] = values
    return out


def separation_metrics(
    references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], sr: int
) -> dict[str, dict[tuple[str, str], float]]:
    """Every reference metric of every estimated stem that has a reference:
    ``{stem: {(metric, variant): value}}``; :func:`score` of one set of arrays. Estimates are
    conformed to their reference (length, and channels averaged where they differ).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> refs = {"a": rng.standard_normal((2, 8000)), "b": rng.standard_normal((2, 8000))}
    >>> ests = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in refs.items()}
    >>> m = separation_metrics(refs, ests, 4000)
    >>> round(m["a"][("sdr", "bsseval_v4")]) >= 19, sorted(k for k, _ in m["a"])
    (True, ['isr', 'leakage', 'leakage', 'nsdr', 'sar', 'sdr', 'si_sdr', 'sir'])
    """
    from stemkit.analyze.bsseval import ArraySignals

    stems = [s for s in estimates if s in references]
    if not stems:
        return {}
    refs = np.stack([np.asarray(references[s], np.float32).T for s in stems])
    ests = np.stack([_match_channels(estimates[s], references[s]).T for s in stems])
    return score(ArraySignals(refs), {"estimates": ArraySignals(ests)}, stems, sr)["estimates"]
