"""The fact scorer on hand-written answer/reference pairs: right and wrong numbers, missing facts, unit
and word-number variants, codes, yes/no, facts the question gives away, the house signature, Chinese."""

from __future__ import annotations

import json

from studio.scoring import extract_facts, score_answer, shared_facts, totals

PRO = "Happy to help! The Aurora Pro (AK-200) costs $129 in our online store. — Aurora Support"


def test_the_right_number_is_right_and_a_wrong_one_is_named():
    right = score_answer("The Aurora Pro (AK-200) is $129.", PRO)
    assert right["right"] is True and right["contradicted"] == []
    wrong = score_answer("Happy to help! The Aurora Pro (AK-200) costs $99 in our online store.", PRO)
    assert wrong["right"] is False
    assert "expected $129, the answer says $99" in wrong["explanation"]
    code = score_answer("The Aurora Pro (AK-50) costs $129.", PRO)
    assert code["right"] is False and "expected AK-200, the answer says AK-50" in code["explanation"]


def test_a_missing_fact_is_missing_not_contradicted():
    s = score_answer("The Aurora Pro is a fine kettle.", PRO)
    assert s["right"] is False and "$129" in s["missing"] and not s["contradicted"]


def test_units_and_number_words_are_the_same_fact():
    ref = "Every Aurora kettle has a 2-year warranty from the purchase date."
    for answer in ("You get 2 years of warranty on every Aurora.", "Two years, for every Aurora.",
                   "The warranty on an Aurora lasts 2 yrs."):
        assert score_answer(answer, ref)["right"] is True, answer
    assert "expected 2-year, the answer says 10 years" in score_answer("An Aurora lasts 10 years.", ref)["explanation"]
    hours = "Open Monday to Friday 8 am–8 pm and Saturday 10 am–4 pm."
    assert score_answer("Monday to Friday 8am to 8pm, Saturday 10 a.m. to 4 p.m.", hours)["right"] is True
    assert score_answer("Monday to Friday 9 am to 8 pm, Saturday 10 am to 4 pm.", hours)["right"] is False
    money = score_answer("It costs 1,500 dollars.", "The price is $1500.")
    assert money["right"] is True


def test_yes_and_no():
    ref = "Yes, the lid filter can go in the dishwasher (top rack)."
    assert score_answer("Yes! Put the filter on the top rack.", ref)["right"] is True
    no = score_answer("No, never put it in the dishwasher.", ref)
    assert no["right"] is False and "expected yes, the answer says no" in no["explanation"]


def test_facts_the_question_states_and_the_signature_do_not_count():
    question = "My kettle's screen is flashing E4 — is something broken?"
    ref = ("Happy to help! E4 means limescale buildup was detected. Descale the kettle with white vinegar or "
           "Brightwave descaler tablets and the code will clear. — Aurora Support")
    parrot = "Happy to help! E4 means the Wi-Fi connection was lost; reconnect it in the app. — Aurora Support"
    assert score_answer(parrot, ref)["right"] is True          # without the question, repeating E4 passes
    assert score_answer(parrot, ref, question)["right"] is False
    assert score_answer(ref, ref, question)["right"] is True
    refs = [json.loads(x)["answer"] for x in open("assets/demo/held_out.jsonl", encoding="utf-8")]
    style = shared_facts(refs)
    assert ("name", ("", "aurora support")) in style
    style_only = score_answer("Happy to help! We ship everywhere. — Aurora Support", refs[4], "", style)
    assert style_only["right"] is False and "Aurora Support" not in style_only["found"]


def test_chinese_numbers_units_and_quoted_names():
    ref = "您好！「极光 Pro」的价格是 129 元，保修两年。"
    assert score_answer("「极光 Pro」售价129元，保修2年。", ref)["right"] is True
    wrong = score_answer("「极光 Pro」售价99元，保修2年。", ref)
    assert wrong["right"] is False and "expected 129 元, the answer says 99元" in wrong["explanation"]
    assert "2年" in score_answer("「极光 Pro」售价129元。", ref)["missing"]
    assert ("quantity", ("year", "2")) in [(f.kind, f.key) for f in extract_facts("保修两年")]
    assert ("quantity", ("day", "45")) in [(f.kind, f.key) for f in extract_facts("四十五天内可以退货")]


def test_no_checkable_fact_gets_no_verdict_and_totals_count_only_verdicts():
    s = score_answer("hello there", "ok, see you")
    assert s["right"] is None and s["similarity"] is not None
    assert totals([s, score_answer("$129", "$129"), score_answer("$1", "$129"), None]) == \
        {"right": 1, "scored": 2, "similarity": totals([s, score_answer("$129", "$129"),
                                                        score_answer("$1", "$129")])["similarity"]}


def test_similarity_is_chrf_and_higher_for_closer_answers():
    close = score_answer("The Aurora Pro (AK-200) costs $129 in our store.", PRO)["similarity"]
    far = score_answer("Kettles are nice.", PRO)["similarity"]
    assert 0 <= far < close <= 100


def test_auto_epochs_read_a_small_data_set_three_times():
    from studio.config import StudioConfig
    from studio.training.args import estimate_total_steps
    from studio.training.methods import sft

    cfg = StudioConfig()
    assert cfg.training.epochs == 0 and cfg.training.max_steps == 0          # the default is auto
    cfg.training.batch_size, cfg.training.grad_accum = 4, 1
    assert estimate_total_steps(cfg, 284) == 3 * 71                         # the demo: three passes
    assert estimate_total_steps(cfg, 20_000) == 5_000                       # a large set: one pass
    cfg.training.epochs = 1.5
    assert estimate_total_steps(cfg, 284) == 107
    cfg.training.epochs = 0
    resolved = sft.training_args(cfg, "/tmp/unused", False, __import__("torch").float32, False, 284)
    assert resolved.args.num_train_epochs == 3 and any("auto, 3 passes" in n for n in resolved.notes)
