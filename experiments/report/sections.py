"""The report's other sections, one per experiment JSON: validated defaults, regularizers, the joint loss,
features, class weights and the target gradient.

Every figure in their prose is read from the JSON the section reports: the
validation share from its ``params`` (``validation_fraction``), the labelled
split's size and the seed's epochs where its experiment recorded them (a JSON
written before then gets the same sentences without those figures).
"""

from __future__ import annotations

import numpy as np

from experiments.report.tables import cell, group, seed_gain, share, table

RARE = ("art", "nat", "eve")
CE_MODELS = ("bert_ner", "bert_ner_extra_ce", "bert_ner_es")  # heads without a KL term
METRICS = ("mean_f1", "entity_f1")  # the Δ columns: the seed's headline, then ours
PAIRED = "gain ± std of the paired differences (two-sided paired t-test); ✔ a gain, ✘ a loss with p < 0.05."


def validation_part(data: dict) -> tuple[str, str]:
    """("the validation part (20%) of the 2,560-sentence labelled split", "the other 80%") from ``data``."""
    fraction = data.get("params", {}).get("validation_fraction")
    sentences = data.get("labelled_sentences")
    split = f"the {sentences:,}-sentence labelled split" if sentences else "the labelled split"
    if fraction is None:
        return f"the validation part of {split}", "the rest"
    return f"the validation part ({share(fraction)}) of {split}", f"the other {share(1 - fraction)}"


def selection_section(data: dict, used: dict | None = None) -> str:
    """The validated defaults: each grid on validation and whether the learning curve ran with the choice.

    ``used``: the settings the learning curve ran with (params.yaml then); without it, those the
    selection itself saw.
    """
    part, rest = validation_part(data)
    epochs = data.get("epochs")
    out = [
        "## 0. Validated defaults",
        "",
        f"Every choice below was made on {part}, mean",
        "validation entity F1 over the selection seeds, teachers = BERT NER trained to convergence on",
        f"{rest}. Each model's line says whether the learning curve ran with the validated choice.",
        "",
    ]
    rows = [[r["seed"], r["best_step"], f"{r['converged']:.4f}", f"{r['epochs_20']:.4f}"] for r in data["supervised"]]
    out += [
        "Early stopping (validation entity F1):",
        "",
        table(
            ["seed", "chosen steps", "converged", f"{epochs} epochs (the seed's)" if epochs else "the seed's epochs"],
            rows,
        ),
        "",
    ]
    grid_values = data.get("grid_values", {})
    for model, rows in data["grids"].items():
        chosen, default = data["chosen"][model], (used or data["defaults"]).get(model, {})
        keys = [
            k
            for k in ("schedule", "kl_learning_rate", "target_gradient", "kl_weight", "threshold", "per_category")
            if any(k in r for r in rows)
        ]
        body = [
            [r.get(k, "") for k in keys]
            + [
                f"{r['validation_entity_f1']:.4f}",
                f"{r['control_entity_f1']:.4f}" if "control_entity_f1" in r else "",
                f"{100 * r['validation_accuracy']:.2f}",
            ]
            for r in rows
        ]
        choice = {k: chosen[k] for k in keys if k in chosen}
        agrees = all(default.get(k) == v for k, v in choice.items() if k in default)
        edge = [
            k
            for k, values in (
                ("kl_learning_rate", grid_values.get("kl_learning_rates")),
                ("kl_weight", grid_values.get("lambdas")),
                ("threshold", grid_values.get("thresholds")),
            )
            if k in choice and values and choice[k] in (min(values), max(values))
        ]
        out += [
            f"**{model}**: chosen {choice}; "
            + (
                f"the learning curve ran {'it ✓' if agrees else f'{default} instead'}"
                if used
                else f"params.yaml {'holds it ✓' if agrees else f'differs: {default}'}"
            )
            + (f"; on the grid's edge: {', '.join(edge)}" if edge else "")
            + ".",
            "",
            table(keys + ["validation entity F1", "its control", "validation accuracy %"], body),
            "",
        ]
    return "\n".join(out)


def regularizer_section(data: dict) -> str:
    """Section 3: weight decay and dropout chosen on validation, then alone and with the KL terms on test."""
    out = [
        "## 3. Traditional regularizers",
        "",
        f"Chosen on validation (BERT NER, mean F1 over selection seeds): weight decay "
        f"{data['chosen']['weight_decay']}, dropout {data['chosen']['dropout']}.",
        "",
    ]
    if "default_head" in data:
        head = data["default_head"]
        out += [
            f"bert_ner_es is the default head ({head['kind']}, {head['output']} output; its own dropout "
            f"{head['dropout']}, weight decay {head['weight_decay']}) trained to convergence, here with none, the "
            "chosen weight decay or the chosen dropout.",
            "",
        ]
    for option, rows in data["selection"].items():
        out += [
            table(
                [option, "validation mean F1", "validation entity F1"],
                [[r["value"], f"{r['validation_mean_f1']:.4f}", f"{r['validation_entity_f1']:.4f}"] for r in rows],
            ),
            "",
        ]
    grouped = group(data["runs"], "regularizer", "model")
    rows = []
    for (regularizer, model), rs in grouped.items():
        rows.append(
            [
                regularizer,
                model,
                cell([r["mean_f1"] for r in rs]),
                cell([r["entity_f1"] for r in rs]),
                cell([r["accuracy_no_o"] for r in rs]),
                *(seed_gain(rs, grouped[("none", model)], m) if regularizer != "none" else "" for m in METRICS),
                seed_gain(rs, grouped[(regularizer, "bert_ner_extra_ce")]) if model not in CE_MODELS else "",
            ]
        )
    out += [
        "Test split. Δ: paired by seed against the same model without a regularizer, and (Δc, mean F1) against",
        f"the extra-CE control with the same regularizer; {PAIRED}",
        "",
        table(
            [
                "regularizer",
                "model",
                "mean F1",
                "entity F1",
                "accuracy no O",
                "Δ mean F1 vs none",
                "Δ entity F1 vs none",
                "Δc mean F1 vs extra-CE control",
            ],
            rows,
        ),
        "",
    ]
    return "\n".join(out)


def joint_section(data: dict) -> str:
    """Section 4: the joint CE + lambda × KL step against alternating steps."""
    out = [
        "## 4. Weighted joint loss vs alternating steps",
        "",
        "lambda chosen on validation: "
        + ", ".join(f"{m} {v}" for m, v in data["chosen_lambda"].items())
        + ". The joint schedule takes one Adam step on",
        'CE + lambda × KL per round; alternating takes a KL step then a CE step. "Same wall-clock" runs as many',
        "joint rounds as fit in the alternating run's measured time.",
        "",
    ]
    for model, rows in data["selection"].items():
        out += [
            f"Validation, {model}:",
            "",
            table(
                ["lambda", "validation mean F1", "validation entity F1"],
                [[r["value"], f"{r['validation_mean_f1']:.4f}", f"{r['validation_entity_f1']:.4f}"] for r in rows],
            ),
            "",
        ]
    grouped = group(data["runs"], "model", "schedule")
    rows = [
        [
            model,
            schedule,
            int(np.mean([r["rounds"] for r in rs])),
            cell([r["mean_f1"] for r in rs]),
            cell([r["entity_f1"] for r in rs]),
            cell([r["train_seconds"] for r in rs], 2),
            *(
                seed_gain(rs, grouped[(model, "alternating")], m)
                if schedule != "alternating" and (model, "alternating") in grouped
                else ""
                for m in METRICS
            ),
        ]
        for (model, schedule), rs in grouped.items()
    ]
    header = ["model", "schedule", "rounds", "mean F1", "entity F1", "train seconds"]
    out += [
        f"Test split. Δ: paired by seed against the same model's alternating schedule; {PAIRED}",
        "",
        table([*header, "Δ mean F1 vs alternating", "Δ entity F1 vs alternating"], rows),
        "",
    ]
    return "\n".join(out)


def features_section(data: dict) -> str:
    """Section 5: encoder layers × pooling on validation, and what caching each choice costs."""
    cost = data["cost"]
    fraction = data.get("params", {}).get("validation_fraction")
    parts = (
        f"BERT NER trained on {share(1 - fraction)} of the labelled split, scored on the other {share(fraction)}"
        if fraction is not None
        else "BERT NER trained on the train part of the labelled split, scored on its validation part"
    )
    out = [
        "## 5. Features: layers and pooling",
        "",
        f"{parts}, mean over selection seeds.",
        f"Best: layers {data['best']['layers']}, {data['best']['pooling']} pooling; pipeline default: layers "
        f"{data['default']['layers']}, {data['default']['pooling']} pooling.",
        "",
    ]
    rows = [
        [
            " ".join(map(str, r["layers"])),
            r["pooling"],
            f"{r['validation_mean_f1']:.4f}",
            f"{r['validation_entity_f1']:.4f}",
            f"{r['validation_accuracy_no_o']:.4f}",
        ]
        for r in sorted(data["grid"], key=lambda r: -r["validation_mean_f1"])
    ]
    out += [
        table(["layers (mean of)", "pooling", "val mean F1", "val entity F1", "val accuracy no O"], rows),
        "",
        f"Cache cost: every choice here averages layers, so each is {cost['full_corpus_bytes_per_choice'] / 2**30:.2f} GiB "
        f"(float16) for the full corpus; keeping all hidden states to choose later would take "
        f"{cost['full_corpus_bytes_all_layers'] / 2**30:.2f} GiB. Encoding all layers of the "
        f"{cost['labelled_words']:,} labelled words took "
        + " / ".join(f"{s} s ({p})" for p, s in cost["all_layer_seconds_on_labelled_split"].items())
        + ".",
        "",
    ]
    return "\n".join(out)


def class_weight_section(data: dict) -> str:
    """Section 6: inverse-frequency class weights, per-category F1 of the rare categories."""
    rows = []
    grouped = group(data["runs"], "model", "class_weights")
    for (model, weighting), rs in grouped.items():
        rows.append(
            [
                model,
                "yes" if weighting else "no",
                cell([r["mean_f1"] for r in rs]),
                cell([r["entity_f1"] for r in rs]),
                *[cell([r["f1"].get(c) for r in rs], 3) for c in RARE],
                cell([r["accuracy_no_o"] for r in rs]),
                *(
                    seed_gain(rs, grouped[(model, False)], m) if weighting and (model, False) in grouped else ""
                    for m in METRICS
                ),
            ]
        )
    return "\n".join(
        [
            "## 6. Class weighting for rare categories",
            "",
            "Inverse-frequency class weights in every CE step; test per-category F1. A CRF head's weights act "
            "through its per-word loss (bert_ner_es_word_loss: the default head with that loss, with and without "
            f"weights). Δ: paired by seed against the same model without weights; {PAIRED}",
            "",
            table(
                [
                    "model",
                    "class weights",
                    "mean F1",
                    "entity F1",
                    *[f"{c} F1" for c in RARE],
                    "accuracy no O",
                    "Δ mean F1 vs no weights",
                    "Δ entity F1 vs no weights",
                ],
                rows,
            ),
            "",
        ]
    )


def target_gradient_section(data: dict) -> str:
    """Section 7: the confidence KL with DEC's fixed target against the seed's gradient through it."""
    rows = [
        [
            split,
            model,
            "on (seed)" if flag else "off (DEC)",
            cell([r["mean_f1"] for r in rs]),
            cell([r["entity_f1"] for r in rs]),
            cell([r["accuracy_no_o"] for r in rs]),
        ]
        for (split, model, flag), rs in group(data["runs"], "split", "model", "target_gradient").items()
    ]
    return "\n".join(
        [
            "## 7. Confidence KL: gradient through the target",
            "",
            "DEC treats the sharpened target p as fixed; the seed let gradients flow through it.",
            "",
            table(["split", "model", "target gradient", "mean F1", "entity F1", "accuracy no O"], rows),
            "",
        ]
    )


SECTIONS = {
    "regularizers": regularizer_section,
    "joint": joint_section,
    "features": features_section,
    "class_weights": class_weight_section,
    "target_gradient": target_gradient_section,
}  # after the learning curve, in this order, each where its JSON exists
