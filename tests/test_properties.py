"""Property tests (hypothesis) of ensembling and scoring."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from kfold.scoring.ensemble import combine
from kfold.scoring.leaderboard import Solution, score_submission
from kfold.files.probs import ProbFile
from kfold.files.submission import Submission

FAST = settings(max_examples=60, deadline=None)


@st.composite
def prob_stacks(draw, min_inputs=1, max_inputs=6):
    """(K, N, C) row-normalised probabilities with some exact ties and zeros."""
    k = draw(st.integers(min_inputs, max_inputs))
    n = draw(st.integers(1, 30))
    c = draw(st.integers(2, 6))
    raw = draw(arrays(np.float32, (k, n, c), elements=st.sampled_from([0.0, 0.25, 1.0, 2.0, 3.0, 7.5])))
    raw[..., 0] += 0.5  # no all-zero rows
    return raw / raw.sum(axis=2, keepdims=True)


def _files(stack, ids=None):
    n, c = stack.shape[1:]
    ids = np.arange(n) if ids is None else ids
    return [ProbFile(ids=ids, probs=p, classes=[f"c{i}" for i in range(c)], meta={"kind": "test"}) for p in stack]


@FAST
@given(prob_stacks(min_inputs=2), st.randoms(use_true_random=False), st.sampled_from(["mean", "geomean"]))
def test_mean_is_invariant_to_input_order(stack, random, method):
    order = list(range(len(stack)))
    random.shuffle(order)
    a = combine(_files(stack), method)
    b = combine(_files(stack[order]), method)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
    np.testing.assert_allclose(a.probs.sum(axis=1), 1.0, atol=1e-5)


@FAST
@given(prob_stacks(), st.integers(0, 2**32 - 1),
       st.one_of(st.none(), st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=6, max_size=6)))
def test_vote_returns_a_class_with_the_most_votes(stack, seed, weights):
    weights = None if weights is None else weights[: len(stack)]
    ens = combine(_files(stack), "vote", seed=seed, weights=weights)
    votes = stack.argmax(axis=2)  # (K, N)
    w = np.ones(len(stack)) if weights is None else np.asarray(weights)
    n, c = stack.shape[1:]
    counts = np.zeros((n, c))
    for k in range(len(stack)):
        counts[np.arange(n), votes[k]] += w[k]
    rows = np.arange(n)
    assert np.allclose(counts[rows, ens.categories], counts.max(axis=1))
    assert ens.tied_rows == int((np.isclose(counts, counts.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum())


@FAST
@given(st.integers(2, 12).flatmap(lambda c: st.tuples(
    st.just(c),
    st.lists(st.integers(0, c - 1), min_size=2, max_size=80),
    st.data())))
def test_scores_lie_in_unit_interval_and_perfect_scores_one(args):
    n_classes, truth, data = args
    n = len(truth)
    usage = np.array(data.draw(st.lists(st.sampled_from(["Public", "Private"]), min_size=n, max_size=n)), dtype=object)
    usage[0], usage[1] = "Public", "Private"  # both splits non-empty
    ids = np.array(data.draw(st.permutations(range(n))), dtype=np.int64)
    solution = Solution(ids=ids, categories=np.array(truth, dtype=np.int64), usage=usage)
    guess = np.array(data.draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)), dtype=np.int64)
    score = score_submission(Submission(ids=ids[::-1].copy(), categories=guess[::-1].copy()), solution, n_bootstrap=30)
    for key in ("public", "private", "public_low", "public_high", "private_low", "private_high"):
        assert 0.0 <= score[key] <= 1.0
    assert score["public_low"] <= score["public"] + 1e-12 and score["private"] <= score["private_high"] + 1e-12
    perfect = score_submission(Submission(ids=ids, categories=solution.categories), solution, n_bootstrap=30)
    assert perfect["public"] == perfect["private"] == 1.0
    probs = np.full((n, n_classes), 0.1 / n_classes)
    probs[np.arange(n), solution.categories] += 0.9
    as_probs = ProbFile(ids=ids, probs=probs.astype(np.float32), classes=[str(i) for i in range(n_classes)],
                        meta={"kind": "test"})
    scored = score_submission(as_probs, solution, n_bootstrap=30)
    assert scored["public"] == scored["private"] == 1.0
    assert 0.0 < scored["public_logloss"] < 0.2
