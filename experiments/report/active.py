"""The active-learning section: which sentences to label next, each strategy against random.

Every figure is read from active_learning.json (``experiments/active.py``): the protocol from its
``settings``, the rounds from its ``runs`` (a run still being written, ``complete: false``, is reported as
incomplete with the rounds it measured). Words are the honest cost, since uncertainty favours long
sentences: each strategy is compared with random at equal labelled words (each seed's curve interpolated
linearly in words between its rounds) and by the words it took to reach random's final entity F1.
"""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np

from experiments.report.plots import active_learning_plot
from experiments.report.sections import PAIRED
from experiments.report.tables import cell, gain_cell, group, p_text, share, significant_gain, table
from heads.stats import SIGNIFICANCE, mean_std, paired_test

REFERENCE = "random"  # the baseline every strategy is compared with
GRID = 101  # word counts of the equal-words comparison, evenly spaced over the range both curves cover
MIN_SEEDS = 5  # fewer seeds than this and a recommendation is provisional
HALF = 0.5  # the target share: a strategy worth recommending needs at most half of random's words


def curves(runs: list) -> dict:
    """{strategy: {seed: its rows in round order}}, random first, the others in order of appearance."""
    grouped = {}
    for run in runs:
        grouped.setdefault(run["strategy"], {}).setdefault(run["seed"], []).append(run)
    ordered = sorted(grouped, key=lambda strategy: strategy != REFERENCE)
    return {s: {seed: sorted(rows, key=lambda r: r["sentences"]) for seed, rows in grouped[s].items()} for s in ordered}


def short_curves(data: dict) -> list[str]:
    """ "`mnlp` seed 1: 9 rounds of 21 measured" for every curve with fewer rounds than ``rounds``."""
    total = len(data["rounds"])
    return [
        f"`{strategy}` seed {seed}: {len(rows)} rounds of {total} measured"
        for strategy, seeds in curves(data["runs"]).items()
        for seed, rows in seeds.items()
        if len(rows) < total
    ]


def incomplete(data: dict) -> bool:
    """The run is still being written (``complete: false``) or some curve lacks rounds."""
    return not data.get("complete", False) or bool(short_curves(data))


def coverage_line(data: dict) -> str:
    """Which strategies of ``heads.acquisition`` ran, on how many seeds, and which did not run at all."""
    from heads.settings import Strategy

    STRATEGIES = typing.get_args(Strategy)  # heads.acquisition's, without loading JAX
    seeds = {}
    for run in data["runs"]:
        seeds.setdefault(run["strategy"], set()).add(run["seed"])
    ran = ", ".join(f"`{s}` ({len(seeds[s])} seed{'s' * (len(seeds[s]) > 1)})" for s in STRATEGIES if s in seeds)
    missing = [f"`{s}`" for s in STRATEGIES if s not in seeds]
    return f"Run: {ran}." + (f" Not run: {', '.join(missing)}." if missing else "")


def cut_text(data: dict) -> str:
    """The curves ``experiments.merge --whole-curves`` left out, if any, as a sentence."""
    total = len(data["rounds"])
    curves = [f"`{c['strategy']}` seed {c['seed']} ({c['rounds']} of {total} rounds)" for c in data.get("cut", [])]
    if not curves:
        return ""
    return (
        f" Left out when the runs were merged, stopped mid-curve: {', '.join(curves)} (a short curve would narrow "
        "the equal-words range of every seed)."
    )


def status_line(data: dict) -> str:
    """Whether the run is complete, and if not, plainly which curves are short; which strategies ran; which
    curves were left out."""
    if not incomplete(data):
        return (
            f"Complete: all {len(data['rounds'])} rounds measured for every strategy and seed. "
            + coverage_line(data)
            + cut_text(data)
        )
    short = short_curves(data)
    flag = "the JSON is marked `complete: false`" if not data.get("complete", False) else "the JSON says complete"
    measured = "; ".join(short) if short else f"all {len(data['rounds'])} rounds measured for the runs present"
    return (
        f"**Incomplete:** {flag}; {measured}. Every figure below is over the rounds measured so far and may "
        "change when the run ends. " + coverage_line(data) + cut_text(data)
    )


def protocol(data: dict) -> str:
    """The protocol in a few sentences, from the JSON's ``settings``."""
    settings = data["settings"]
    pool = (
        f"{settings['pool']:,} candidates drawn at random from the unlabelled rest"
        if settings["pool"]
        else "every unlabelled non-test sentence"
    )
    test = f" ({data['test_sentences']:,} sentences)" if "test_sentences" in data else ""
    words = data.get("mean_words_per_sentence")
    return (
        f"Each run starts from {settings['start']:,} sentences drawn at random from the non-test sentences, trains "
        "bert_ner_es's head on them to convergence (its settings, early stopping, then refit on all of them) and "
        f"scores it on the fixed test split{test}. Each round the strategy picks the next {settings['batch']:,} "
        f"sentences among {pool}, the oracle (the corpus's own tags) labels them and the head is retrained from "
        f"scratch, until {settings['until']:,} sentences are labelled (rounds at "
        f"{', '.join(map(str, data['rounds']))}). Every strategy of a seed starts from the same sentences, so "
        "rounds pair across strategies by seed. Uncertainty favours long sentences, so labelled words, not "
        "sentences, are the honest cost"
        + (f" (a non-test sentence has {words:.1f} words on average)." if words else ".")
    )


def rounds_table(strategy: str, runs: list) -> str:
    """One strategy's rounds: labelled sentences, labelled words and test entity F1 (mean ± std over seeds)."""
    rows = [
        [sentences, cell([r["words"] for r in rs], 0), cell([r["entity_f1"] for r in rs]), len(rs)]
        for (sentences,), rs in sorted(group([r for r in runs if r["strategy"] == strategy], "sentences").items())
    ]
    return table(["labelled sentences", "labelled words", "entity F1", "seeds"], rows)


def equal_words(ours: dict, theirs: dict, points: int = GRID) -> dict | None:
    """Entity F1 of ``ours`` minus ``theirs`` ({seed: rows}) at equal labelled words, paired by seed.

    Each seed's curve is interpolated linearly in words between its rounds (``np.interp``) at ``points``
    word counts evenly spaced over the range every curve of both covers on the common seeds; a seed's
    difference is the mean over that grid. Returns {"low", "high", "seeds", "ours", "theirs", "test"}
    (``test``: ``heads.stats.paired_test`` of the per-seed means), or None without a common seed or range.
    """
    seeds = sorted(set(ours) & set(theirs))
    pairs = [(ours[seed], theirs[seed]) for seed in seeds]
    if not pairs:
        return None
    low = max(rows[0]["words"] for pair in pairs for rows in pair)
    high = min(rows[-1]["words"] for pair in pairs for rows in pair)
    if high <= low:
        return None
    grid = np.linspace(low, high, points)

    def on_grid(rows: list) -> np.ndarray:
        return np.interp(grid, [r["words"] for r in rows], [r["entity_f1"] for r in rows])

    ours_f1 = np.array([on_grid(a) for a, _ in pairs])  # (seeds, grid)
    theirs_f1 = np.array([on_grid(b) for _, b in pairs])
    ours_means, theirs_means = ours_f1.mean(axis=1).tolist(), theirs_f1.mean(axis=1).tolist()
    gaps = (ours_f1 - theirs_f1).mean(axis=0)  # (grid,) the mean paired difference at each word count
    worst = int(np.argmin(gaps))
    spread = float(ours_f1[:, worst].std(ddof=1)) if len(pairs) > 1 else None
    return {
        "low": low,
        "high": high,
        "seeds": seeds,
        "ours": ours_means,
        "theirs": theirs_means,
        "test": paired_test(ours_means, theirs_means),
        # The worst word count: the mean difference there and the strategy's std over seeds there.
        "worst": {"words": float(grid[worst]), "gap": float(gaps[worst]), "spread": spread},
    }


def worst_cell(comparison: dict | None) -> str:
    """The lowest mean difference from random over the compared words, where, and whether it stays within the
    strategy's seed spread (std over seeds) there: the issue's "never below random by more than its spread"."""
    if comparison is None:
        return "n/a"
    worst = comparison["worst"]
    where = f"{worst['gap']:+.4f} at {worst['words']:,.0f} words"
    if worst["spread"] is None:
        return where + " (one seed: no spread)"
    within = worst["gap"] >= -worst["spread"]
    return where + f", spread {worst['spread']:.4f}: " + ("within it" if within else "**below it**")


def equal_words_cell(comparison: dict | None) -> str:
    """The paired gain with its p (``gain_cell``); a single seed's difference says it has no test."""
    if comparison is None:
        return "n/a: no common word range"
    if len(comparison["seeds"]) < 2:
        return f"{comparison['ours'][0] - comparison['theirs'][0]:+.4f} (one seed: no test)"
    return gain_cell(comparison["test"])


def target(reference: dict, until: int) -> dict | None:
    """Random's mean entity F1 at ``until`` sentences (the target) and its mean words there.

    Where a random seed has not reached ``until`` yet, the last round every random seed measured stands
    in (``"sentences"`` says which). None without a random run.
    """
    if not reference:
        return None
    sentences = min(rows[-1]["sentences"] for rows in reference.values())
    at = [next(r for r in rows if r["sentences"] == sentences) for rows in reference.values()]
    return {
        "sentences": sentences,
        "until": until,
        "entity_f1": mean_std([r["entity_f1"] for r in at])[0],
        "words": mean_std([r["words"] for r in at])[0],
    }


def words_to_reach(rows: list, goal: float) -> float | None:
    """The first labelled-word count at which the curve (linear in words between rounds) reaches ``goal``."""
    for before, after in zip([None, *rows], rows):
        if after["entity_f1"] >= goal:
            if before is None:
                return float(after["words"])
            rise = (goal - before["entity_f1"]) / (after["entity_f1"] - before["entity_f1"])
            return float(before["words"] + rise * (after["words"] - before["words"]))
    return None


def reach(seeds: dict, goal: dict) -> dict:
    """Per strategy: {"words": {seed: words or None}, "share": mean words / random's words at the target,
    or None unless every seed reached it}."""
    words = {seed: words_to_reach(rows, goal["entity_f1"]) for seed, rows in seeds.items()}
    reached = all(w is not None for w in words.values())
    return {"words": words, "share": mean_std(list(words.values()))[0] / goal["words"] if reached else None}


def half_words_test(result: dict, reference: dict, goal: dict) -> dict | None:
    """One-sided paired t-test, by seed, that a strategy's words to the target are below ``HALF`` of the words
    random labelled by the target's round on the same seed. Returns {"seeds", "p"}, or None unless every seed
    reached the target and at least two are shared with random."""
    from scipy.stats import ttest_rel

    words = result["words"]
    seeds = sorted(set(words) & set(reference))
    if len(seeds) < 2 or any(words[seed] is None for seed in words):
        return None
    halves = [HALF * next(r["words"] for r in reference[seed] if r["sentences"] == goal["sentences"]) for seed in seeds]
    p = float(ttest_rel([words[seed] for seed in seeds], halves, alternative="less").pvalue)
    return {"seeds": len(seeds), "p": p}


def half_words_cell(test: dict | None) -> str:
    """ "p=0.012 ✔" (below half of random's words, significant), "p=0.300", or why there is no test."""
    if test is None:
        return "n/a: needs every seed to reach the target, two or more shared with random"
    return p_text(test["p"]) + (" ✔" if test["p"] < SIGNIFICANCE else "")


def reference_row(reference: dict, goal: dict) -> list:
    """Random's row of the words-to-target table: its words at the target's round, by definition 100%."""
    words = [next(r["words"] for r in rows if r["sentences"] == goal["sentences"]) for rows in reference.values()]
    return [f"`{REFERENCE}`", len(reference), cell(words, 0), "100% (the reference)", ""]


def reach_row(strategy: str, seeds: dict, result: dict, rounds: list) -> list:
    """A row of the words-to-target table: mean ± std words, the share of random's, or which seeds did not."""
    missed = [seed for seed, w in result["words"].items() if w is None]
    if missed:
        cut = any(len(seeds[seed]) < len(rounds) for seed in missed)
        return [
            f"`{strategy}`",
            len(seeds),
            cell([w for w in result["words"].values() if w is not None], 0),
            f"not reached (seed{'s' if len(missed) > 1 else ''} {', '.join(map(str, missed))}"
            + (", in the rounds measured so far)" if cut else ")"),
            half_words_cell(None),
        ]
    return [
        f"`{strategy}`",
        len(seeds),
        cell(list(result["words"].values()), 0),
        share_text(result["share"]),
        half_words_cell(result.get("half")),
    ]


def share_text(fraction: float) -> str:
    """ "47% of random's words"."""
    return f"{share(fraction)} of random's words"


def target_text(goal: dict) -> str:
    """ "random's final entity F1 (0.7873)", or at the round that stands in for an unfinished random run."""
    if goal["sentences"] == goal["until"]:
        return f"random's final entity F1 ({goal['entity_f1']:.4f})"
    return f"random's entity F1 at {goal['sentences']:,} sentences ({goal['entity_f1']:.4f})"


def seeds_text(count: int) -> str:
    """ "1 seed", "3 seeds"."""
    return f"{count} seed{'s' if count != 1 else ''}"


def recommendation(results: dict, comparisons: dict, seeds: dict, data: dict, goal: dict) -> str:
    """The strategy with the smallest share that reached the target on every seed, provisional unless it has
    ``MIN_SEEDS`` seeds, a significant equal-words gain (p < ``SIGNIFICANCE``) and a complete run; random where
    no strategy reached it with fewer words (provisional under ``MIN_SEEDS`` seeds or an incomplete run)."""
    candidates = {s: r["share"] for s, r in results.items() if s != REFERENCE and r["share"] is not None}

    def established(strategy: str) -> bool:  # MIN_SEEDS seeds and a significant equal-words gain over random
        comparison = comparisons.get(strategy)
        return (
            len(seeds[strategy]) >= MIN_SEEDS
            and comparison is not None
            and len(comparison["seeds"]) >= 2
            and significant_gain(comparison["test"])
        )

    # A screened strategy (fewer seeds) with a smaller share does not displace an established one: it is named.
    proven = {s: share for s, share in candidates.items() if established(s) and share < 1}
    best = min(proven or candidates, key=(proven or candidates).get) if candidates else None
    screened = [s for s in candidates if proven and s not in proven and candidates[s] < candidates[best]]
    why = []
    if best is None or candidates[best] >= 1:
        fewest = min(len(rows) for rows in seeds.values())
        if fewest < MIN_SEEDS:
            why.append(f"{seeds_text(fewest)} (fewer than {MIN_SEEDS})")
        line = f"**Recommendation**: label at random: no strategy reached {target_text(goal)} " + (
            "on every seed"
            if best is None
            else f"with fewer words (the fewest: `{best}`, {share_text(candidates[best])})"
        )
    else:
        comparison = comparisons.get(best)
        if len(seeds[best]) < MIN_SEEDS:
            why.append(f"{seeds_text(len(seeds[best]))} (fewer than {MIN_SEEDS})")
        if comparison is None:
            why.append("no equal-words comparison with random")
        elif len(comparison["seeds"]) < 2:
            why.append("one seed in common with random: no paired test")
        elif not significant_gain(comparison["test"]):
            why.append(
                f"its equal-words difference from random is not a significant gain at p < {SIGNIFICANCE} "
                f"({comparison['test']['gain']:+.4f}, {p_text(comparison['test']['p'])})"
            )
        line = (
            f"**Recommendation**: `{best}`: it reached {target_text(goal)} on every seed with "
            f"{share_text(candidates[best])}"
        )
        if not why and not incomplete(data):
            line += f", and its gain over random at equal words is significant ({p_text(comparison['test']['p'])})."
            return line + screened_text(screened, candidates, seeds)
    if incomplete(data):
        why.append("the run is incomplete")
    return line + (". Provisional: " + "; ".join(why) + "." if why else ".")


def screened_text(screened: list, candidates: dict, seeds: dict) -> str:
    """ " `diversity` needed fewer words (37% of random's) on 1 seed: a screen, worth the full seeds." or ""."""
    return "".join(
        f" `{s}` needed fewer words ({share_text(candidates[s])}) on {seeds_text(len(seeds[s]))}: a screen, worth "
        f"{MIN_SEEDS} seeds before it replaces the recommendation."
        for s in screened
    )


def compute_table(runs: list) -> str:
    """Per strategy: the seconds spent training and choosing, summed, and the mean choose seconds per round."""
    rows = []
    for strategy in curves(runs):
        rs = [r for r in runs if r["strategy"] == strategy]
        train = sum(r["train_seconds"] for r in rs)
        chosen = [r["choose_seconds"] for r in rs if "choose_seconds" in r]
        rows.append(
            [
                f"`{strategy}`",
                len(rs),
                f"{train:,.0f}",
                f"{sum(chosen):,.0f}",
                f"{train + sum(chosen):,.0f}",
                f"{np.mean(chosen):.2f}" if chosen else "n/a",
            ]
        )
    header = ["strategy", "rounds run", "train s", "choose s", "total s", "choose s per round"]
    return table(header, rows)


def cache_text(data: dict) -> str:
    """ "MiniLM layers [3, 4, 5], fp32": the cache a run's heads read (its JSON's ``features`` fingerprint)."""
    features = data.get("features") or {}
    precision = features.get("precision", "unknown precision")
    return f"{features.get('encoder', 'an unknown encoder')} layers {features.get('layers')}, {precision}"


def active_section(data: dict, plots: Path | None, name: str = "active_learning", title: str | None = None) -> str:
    """Section 8: which sentences to label next, each strategy against random; its plot written under ``plots``
    and linked (None: neither). ``name``: the JSON's stem, which names the plot; ``title``: the heading (a run on
    another cache is a subsection of its own)."""
    runs = data["runs"]
    by_strategy = curves(runs)
    reference = by_strategy.get(REFERENCE, {})
    others = [s for s in by_strategy if s != REFERENCE]
    heading = title or "## 8. Which sentences to label next (active learning)"
    out = [heading, "", protocol(data), f"The heads read the cache of {cache_text(data)}.", "", status_line(data), ""]
    if plots is not None:
        active_learning_plot(runs, plots / f"{name}.png")
        out += [f"![{name.replace('_', ' ')}](experiments/plots/{name}.png)", ""]
    out += [
        "Test entity F1 per round, mean ± std over seeds:",
        "",
    ]
    for strategy in by_strategy:
        out += [f"**{strategy}**", "", rounds_table(strategy, runs), ""]
    if not reference:
        return "\n".join(out + ["No random run yet: nothing to compare the strategies with.", ""])
    comparisons = {s: equal_words(by_strategy[s], reference) for s in others}
    out += [
        f"At equal words: each seed's entity F1 interpolated linearly in labelled words between its rounds, at "
        f"{GRID} word counts evenly spaced over the range both curves cover on the common seeds; the strategy "
        f"minus random averaged over that range per seed; Δ: {PAIRED}",
        "",
        table(
            [
                "strategy",
                "seeds with random",
                "words compared",
                "Δ entity F1 vs random at equal words",
                "lowest Δ (mean over seeds) and the strategy's seed spread there",
            ],
            [
                [
                    f"`{s}`",
                    len(set(by_strategy[s]) & set(reference)),
                    f"{c['low']:,.0f} to {c['high']:,.0f}" if c else "n/a",
                    equal_words_cell(c),
                    worst_cell(c),
                ]
                for s, c in comparisons.items()
            ],
        ),
        "",
    ]
    goal = target(reference, data["settings"]["until"])
    results = {s: reach(by_strategy[s], goal) for s in others}
    for result in results.values():
        result["half"] = half_words_test(result, reference, goal)
    stand_in = (
        ""
        if goal["sentences"] == goal["until"]
        else f" (random has not reached {goal['until']:,} sentences on every seed: its last round all seeds "
        f"measured, {goal['sentences']:,}, stands in)"
    )
    out += [
        f"Words to reach random's final entity F1: the target is random's mean entity F1 at {goal['sentences']:,} "
        f"sentences, {goal['entity_f1']:.4f}, with {goal['words']:,.0f} labelled words{stand_in}; per seed, the "
        "first word count at which the curve (linear between rounds) reaches it. Below half: a one-sided paired "
        f"t-test, by seed, of the strategy's words to the target against {share(HALF)} of the words random "
        f"labelled by that round on the same seed (✔: p < {SIGNIFICANCE}).",
        "",
        table(
            ["strategy", "seeds", "words to the target", "share", f"below {share(HALF)} of random's words"],
            [reference_row(reference, goal)]
            + [reach_row(s, by_strategy[s], results[s], data["rounds"]) for s in others],
        ),
        "",
        recommendation(results, comparisons, by_strategy, data, goal),
        "",
        "Compute (seconds summed over seeds and rounds; choosing is timed on every round but the last):",
        "",
        compute_table(runs),
        "",
    ]
    return "\n".join(out)
