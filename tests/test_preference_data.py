"""Preference pairs (DPO/ORPO/SimPO), labelled answers (KTO) and prompts (GRPO) from the data pipeline:
each shape read, rendered through the run's template as SFT renders, its problems named by row."""

from __future__ import annotations

import json

import pytest
from tiny import tiny_tokenizer

from studio import paths
from studio.config import DataConfig
from studio.data.pipeline import inspect, prepare
from studio.data.types import EncodedLabelled, EncodedPair, EncodedPrompt
from studio.errors import DataError

SYSTEM = {"role": "system", "content": "Be brief."}
Q = {"role": "user", "content": "How much is the Aurora?"}
GOOD, BAD = "It costs 79 dollars.", "It is free."
A_GOOD, A_BAD = {"role": "assistant", "content": GOOD}, {"role": "assistant", "content": BAD}


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def full_ids(tok, messages):
    return tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]


# Each shape of a pair, and the prompt its answers follow.
SHAPES = {
    "text": ({"prompt": Q["content"], "chosen": GOOD, "rejected": BAD}, [Q]),
    "messages": ({"prompt": [Q], "chosen": [A_GOOD], "rejected": [A_BAD]}, [Q]),
    "implicit": ({"chosen": [Q, A_GOOD], "rejected": [Q, A_BAD]}, [Q]),
    "ultrafeedback": ({"prompt": Q["content"], "chosen": [Q, A_GOOD], "rejected": [Q, A_BAD]}, [Q]),
    "sharegpt": ({"conversations": [{"from": "human", "value": Q["content"]}], "chosen": {"from": "gpt", "value": GOOD},
                  "rejected": BAD}, [Q]),
    "hh": ({"chosen": f"\n\nHuman: {Q['content']}\n\nAssistant: {GOOD}",
            "rejected": f"\n\nHuman: {Q['content']}\n\nAssistant: {BAD}"}, [Q]),
    "system": ({"system": SYSTEM["content"], "prompt": Q["content"], "chosen": GOOD, "rejected": BAD}, [SYSTEM, Q]),
    "multi-turn": ({"chosen": [Q, {"role": "assistant", "content": "Which one?"}, {"role": "user", "content": "Pro"},
                               A_GOOD],
                    "rejected": [Q, {"role": "assistant", "content": "Which one?"}, {"role": "user", "content": "Pro"},
                                 A_BAD]},
                   [Q, {"role": "assistant", "content": "Which one?"}, {"role": "user", "content": "Pro"}]),
}


@pytest.mark.parametrize("name", SHAPES)
def test_each_pair_shape_is_read_and_rendered_as_the_template_ends_an_answer(tmp_path, tok, name):
    rec, prompt = SHAPES[name]
    f = jsonl(tmp_path / "pairs.jsonl", [rec])
    data = prepare(DataConfig(file=f, validation=0), tok, seed=0, shape="pair")
    (row,) = data.train
    assert isinstance(row, EncodedPair) and data.report.problems == []
    # The prompt's tokens and each answer's are exactly the template's full render of prompt + that answer.
    assert row.prompt_ids + row.chosen_ids == full_ids(tok, prompt + [A_GOOD])
    assert row.prompt_ids + row.rejected_ids == full_ids(tok, prompt + [A_BAD])
    assert tok.decode(row.prompt_ids) == tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert tok.decode(row.chosen_ids).startswith(GOOD) and tok.decode(row.rejected_ids).startswith(BAD)
    assert tok.decode(row.chosen_ids[-2:]) == "<|im_end|>\n"      # the answer ends as the template ends a turn
    assert row.text == tok.apply_chat_template(prompt + [A_GOOD], tokenize=False)


def test_the_preview_shows_the_pair_side_by_side_with_loss_on_the_answers_only(tmp_path, tok):
    f = jsonl(tmp_path / "pairs.jsonl", [SHAPES["system"][0], SHAPES["implicit"][0]])
    report = inspect(f, tokenizer=tok, shape="pair")
    assert report.rows == 2 and report.shape == "pair" and report.format == "preference"
    assert any("DPO, ORPO, SimPO and KTO" in n and "2 pairs" in n for n in report.notes)
    data = prepare(DataConfig(file=f, validation=0), tok, seed=0, shape="pair")
    by_row = {r.row: r for r in data.train}
    assert [p["row"] for p in report.preview_pairs] == [1, 2]
    for pair in report.preview_pairs:
        assert all(not loss for _, loss in pair["prompt"])
        assert all(loss for _, loss in pair["chosen"]) and all(loss for _, loss in pair["rejected"])
        prompt = "".join(t for t, _ in pair["prompt"])
        # The same tokens training uses: prompt + chosen is the training text, prompt + rejected the other one.
        assert prompt + "".join(t for t, _ in pair["chosen"]) == by_row[pair["row"]].text
        assert prompt + "".join(t for t, _ in pair["rejected"]) == by_row[pair["row"]].rejected_text
        assert tok(prompt, add_special_tokens=False)["input_ids"] == by_row[pair["row"]].prompt_ids
    assert report.to_dict()["preview_pairs"] == report.preview_pairs


def test_preference_file_read_as_conversations_still_previews_its_pairs(tmp_path, tok):
    f = jsonl(tmp_path / "pairs.jsonl", [SHAPES["text"][0]])
    report = inspect(f, tokenizer=tok)          # shape "conversation": today's chosen-only training
    assert report.shape == "conversation" and report.rows == 1
    assert any("chosen answers" in n for n in report.notes)
    assert any("preference method" in n for n in report.notes)
    assert report.preview_pairs and BAD in report.preview_pairs[0]["rejected"][0][0]


def test_bad_pairs_are_named_by_row(tmp_path, tok):
    f = jsonl(tmp_path / "pairs.jsonl", [
        SHAPES["text"][0],
        {"prompt": "Q?", "chosen": GOOD, "rejected": ""},
        {"prompt": "Q?", "chosen": GOOD, "rejected": GOOD},
        {"prompt": "Q?", "chosen": GOOD},
        {"chosen": [Q, A_GOOD], "rejected": [{"role": "user", "content": "Other?"}, A_BAD]},
        {"prompt": "Q?", "chosen": "  ", "rejected": BAD},
        {"chosen": [Q, A_GOOD], "rejected": [Q, A_GOOD]}])
    report = inspect(f, tokenizer=tok, shape="pair")
    by_row = {p.row: p.message for p in report.problems}
    assert report.rows == 1 and sorted(by_row) == [2, 3, 4, 5, 6, 7]
    assert by_row[2] == "the rejected answer is empty"
    assert "chosen and rejected are the same answer" in by_row[3] and "same answer" in by_row[7]
    assert "'rejected'" in by_row[4]
    assert "same question" in by_row[5]
    assert by_row[6] == "the chosen answer is empty"


def test_a_file_without_rejected_answers_is_refused_naming_the_columns(tmp_path, tok):
    f = jsonl(tmp_path / "sft.jsonl", [{"instruction": "Q?", "output": GOOD}] * 3)
    with pytest.raises(DataError) as e:
        prepare(DataConfig(file=f), tok, seed=0, shape="pair")
    assert e.value.code == "data.not_preference"
    assert "'chosen'" in str(e.value) and "'rejected'" in str(e.value) and "instruction, output" in str(e.value)
    report = inspect(f, tokenizer=tok, shape="pair")
    assert report.rows == 0 and "'rejected'" in report.message


def test_long_pairs_follow_the_sft_length_rule(tmp_path, tok):
    long = "It costs 79 dollars and ships to Canada. " * 6
    f = jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Q?", "chosen": long, "rejected": BAD},
                                         {"prompt": "Q? " * 40, "chosen": GOOD, "rejected": BAD}])
    cfg = DataConfig(file=f, validation=0, max_length=40)
    data = prepare(cfg, tok, seed=0, shape="pair")
    (row,) = data.train
    assert row.truncated and len(row.prompt_ids) + len(row.chosen_ids) == 40
    assert row.rejected_ids == full_ids(tok, [{"role": "user", "content": "Q?"}, A_BAD])[len(row.prompt_ids):]
    assert data.report.cut == 1 and data.report.left_out_long == 1
    (problem,) = data.report.problems
    assert problem.row == 2 and "longer than the maximum of 40" in problem.message
    cfg.overlong = "drop"
    with pytest.raises(DataError, match="row 1: the row is .* tokens, longer than the maximum of 40"):
        prepare(cfg, tok, seed=0, shape="pair")


def test_a_template_that_writes_the_prompt_differently_is_said_for_the_row(tmp_path):
    odd = tiny_tokenizer()      # the generation prompt says 'assistant', a finished turn says 'bot'
    odd.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + ('bot' if m['role'] == 'assistant' else m['role'])"
                         " + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
                         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    f = jsonl(tmp_path / "pairs.jsonl", [SHAPES["text"][0]])
    report = inspect(f, tokenizer=odd, shape="pair")
    assert report.rows == 0 and "writes the prompt differently" in report.problems[0].message


# ---- KTO ------------------------------------------------------------------------------------------
def test_kto_rows_read_their_labels_and_count_them(tmp_path, tok):
    f = jsonl(tmp_path / "kto.jsonl", [
        {"prompt": "Price?", "completion": GOOD, "label": True},
        {"prompt": "Price?", "completion": BAD, "label": "false"},
        {"prompt": "Colour?", "completion": "White.", "label": 1},
        {"prompt": "Size?", "completion": "Huge.", "label": 0},
        {"prompt": "Ships?", "completion": "Yes.", "label": "TRUE"},
        {"prompt": "Warranty?", "completion": "Two years.", "label": "maybe"},
        {"prompt": "Returns?", "completion": "45 days."}])
    data = prepare(DataConfig(file=f, validation=0), tok, seed=0, shape="labelled")
    assert all(isinstance(r, EncodedLabelled) for r in data.train)
    assert {r.row: r.label for r in data.train} == {1: True, 2: False, 3: True, 4: False, 5: True}
    assert data.report.labels == {"desirable": 3, "undesirable": 2}
    assert any("3 desirable and 2 undesirable" in n for n in data.report.notes)
    by_row = {p.row: p.message for p in data.report.problems}
    assert "'maybe'" in by_row[6] and "'label'" in by_row[7]
    row = next(r for r in data.train if r.row == 2)
    assert row.prompt_ids + row.completion_ids == full_ids(tok, [{"role": "user", "content": "Price?"}, A_BAD])


def test_kto_with_one_kind_of_label_says_so(tmp_path, tok):
    f = jsonl(tmp_path / "kto.jsonl", [{"prompt": f"Q{i}?", "completion": GOOD, "label": True} for i in range(9)]
              + [{"prompt": "Q?", "completion": BAD, "label": False}])
    report = inspect(f, tokenizer=tok, shape="labelled")
    assert report.labels == {"desirable": 9, "undesirable": 1}
    assert any("far from balanced" in n for n in report.notes)
    f = jsonl(tmp_path / "good.jsonl", [{"prompt": "Q?", "completion": GOOD, "label": True}] * 2)
    assert any("only one of them" in n for n in inspect(f, tokenizer=tok, shape="labelled").notes)


def test_a_pair_file_gives_kto_one_desirable_and_one_undesirable_row_per_pair(tmp_path, tok):
    f = jsonl(tmp_path / "pairs.jsonl", [SHAPES["text"][0], SHAPES["implicit"][0], SHAPES["system"][0]])
    data = prepare(DataConfig(file=f, validation=1), tok, seed=0, shape="labelled")
    rows = data.train + data.validation
    assert sorted((r.row, r.label) for r in rows) == [(1, False), (1, True), (2, False), (2, True), (3, False),
                                                      (3, True)]
    # Both halves of a pair stay on one side of the split.
    assert len(data.validation) == 2 and len({r.row for r in data.validation}) == 1
    assert data.report.labels == {"desirable": 3, "undesirable": 3}
    assert any("two rows" in n for n in data.report.notes)
    assert data.held_out and data.held_out[0]["reference"] == GOOD
    bad = next(r for r in rows if r.row == 1 and not r.label)
    assert tok.decode(bad.completion_ids).startswith(BAD)


def test_kto_refuses_a_file_with_no_labels_naming_the_columns(tmp_path, tok):
    f = jsonl(tmp_path / "sft.jsonl", [{"instruction": "Q?", "output": GOOD}] * 2)
    with pytest.raises(DataError) as e:
        prepare(DataConfig(file=f), tok, seed=0, shape="labelled")
    assert e.value.code == "data.not_labelled" and "'label'" in str(e.value) and "'chosen'" in str(e.value)


# ---- GRPO -----------------------------------------------------------------------------------------
def test_grpo_prompts_carry_the_last_answer_as_reference(tmp_path, tok):
    second = {"role": "user", "content": "And the Pro?"}
    f = jsonl(tmp_path / "sft.jsonl", [
        {"messages": [SYSTEM, Q, A_GOOD]},
        {"messages": [Q, A_BAD, second, {"role": "assistant", "content": "129 dollars."}]},
        {"text": "plain text only"}])
    data = prepare(DataConfig(file=f, validation=0), tok, seed=0, shape="prompt")
    rows = {r.row: r for r in data.train}
    assert all(isinstance(r, EncodedPrompt) for r in rows.values()) and sorted(rows) == [1, 2]
    assert rows[1].reference == GOOD and rows[1].messages == [SYSTEM, Q]
    assert rows[2].reference == "129 dollars." and rows[2].messages == [Q, A_BAD, second]
    for r in rows.values():
        assert r.prompt == tok.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
        assert r.prompt_ids == tok(r.prompt, add_special_tokens=False)["input_ids"]
    assert data.system_prompt["rows_with_system"] == 1


def test_grpo_reads_a_pair_file_with_the_chosen_answer_as_reference(tmp_path, tok):
    f = jsonl(tmp_path / "pairs.jsonl", [SHAPES["ultrafeedback"][0], SHAPES["hh"][0]] * 2)
    data = prepare(DataConfig(file=f, validation=2), tok, seed=0, shape="prompt")
    assert {r.reference for r in data.train + data.validation} == {GOOD}
    assert [m["content"] for m in data.train[0].messages] == [Q["content"]]
    assert any("chosen answer is each prompt's reference" in n for n in data.report.notes)
    assert len(data.held_out) == 2 and all(h == {"prompt": Q["content"], "reference": GOOD} for h in data.held_out)


def test_grpo_reads_a_kto_file_with_the_desirable_answers_as_references(tmp_path, tok):
    f = jsonl(tmp_path / "kto.jsonl", [{"prompt": "Price?", "completion": GOOD, "label": True},
                                       {"prompt": "Price?", "completion": BAD, "label": False}])
    data = prepare(DataConfig(file=f, validation=0), tok, seed=0, shape="prompt")
    assert [r.reference for r in data.train] == [GOOD]
    assert any("desirable answers are the prompts' reference" in n for n in data.report.notes)
    assert not any("fine-tunes" in n for n in data.report.notes)


# ---- the demo -------------------------------------------------------------------------------------
def test_the_demo_preference_file_is_clean_wrong_in_one_fact_and_keeps_held_out_questions_out(tok):
    data = prepare(DataConfig(file="demo-preference", validation=0), tok, seed=0, shape="pair")
    assert data.report.problems == [] and len(data.train) == 300
    records = [json.loads(line) for line in paths.DEMO_PREFERENCE.read_text(encoding="utf-8").splitlines()]
    faq = [json.loads(line) for line in paths.DEMO_DATA.read_text(encoding="utf-8").splitlines()]
    for rec, source in zip(records, faq, strict=True):
        assert rec["chosen"] == source["messages"][-1]["content"]
        assert rec["rejected"] != rec["chosen"]
        # The same house style; what differs is a fact in the middle.
        assert rec["rejected"].startswith("Happy to help!") and rec["rejected"].endswith("— Aurora Support")
    held = [json.loads(line)["question"] for line in paths.DEMO_HELD_OUT.read_text(encoding="utf-8").splitlines()]
    asked = {json.dumps(r["prompt"], ensure_ascii=False) for r in records}
    assert not [q for q in held if any(q.lower() in a.lower() for a in asked)]


def test_the_demo_preference_file_still_trains_sft_on_its_chosen_answers(tok):
    data = prepare(DataConfig(file="demo-preference", validation=0), tok, seed=0)
    assert len(data.train) == 300 and data.report.problems == []
    assert any("chosen answers" in n for n in data.report.notes)


def test_a_run_on_the_demo_pairs_is_scored_on_the_demo_held_out_questions(tok):
    from studio.config import StudioConfig
    from studio.evaluation import load_prompts, prompts_after_training
    cfg = StudioConfig(data=DataConfig(file="demo-preference"))
    data = prepare(cfg.data, tok, seed=0, shape="pair")
    assert prompts_after_training(cfg, data) == load_prompts(None) != data.held_out[:len(load_prompts(None))]


def test_pairs_split_by_the_seed_as_conversations_do_and_preview_without_a_model(tmp_path, tok):
    rows = [{"prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": f"Wrong {i}."} for i in range(10)]
    f = jsonl(tmp_path / "pairs.jsonl", rows)
    a, b = (prepare(DataConfig(file=f, validation=0.2), tok, seed=3, shape="pair") for _ in range(2))
    assert [r.row for r in a.validation] == [r.row for r in b.validation] and len(a.validation) == 2
    assert {r.row for r in a.train}.isdisjoint(r.row for r in a.validation)
    assert sorted(h["prompt"] for h in a.held_out) == sorted(f"Question {r.row - 1}?" for r in a.validation)
    other = prepare(DataConfig(file=f, validation=0.2), tok, seed=4, shape="pair")
    assert [r.row for r in other.train] != [r.row for r in a.train]
    report = inspect(f, shape="pair")           # no model chosen yet: the fallback template's text
    assert report.rows == 10 and report.preview_pairs[0]["chosen"][0][0].startswith("Answer 0.")


def test_studio_data_reads_a_file_as_a_preference_method_does(capsys):
    from studio.cli import main
    assert main(["data", "demo-preference", "--shape", "pair", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shape"] == "pair" and out["rows"] == 300 and len(out["preview_pairs"]) == 3
    assert main(["data", "demo-preference", "--shape", "pair", "--rows", "1"]) == 0
    text = capsys.readouterr().out
    assert "[chosen]" in text and "[rejected]" in text and "DPO, ORPO, SimPO and KTO" in text
    assert main(["data", "demo", "--shape", "pair"]) == 1
    assert "'rejected'" in capsys.readouterr().out
