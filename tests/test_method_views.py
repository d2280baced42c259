"""The method chart and the pair preview: what a preference run logs is drawn, what it does not log is not, shares
go on their own axis, and a pair's text is shown escaped with only the answers marked as carrying the loss."""

from __future__ import annotations

from studio.ui.method_plot import method_figure, plotted
from studio.ui.pair_view import pair_html

NAMES = ["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"]
ROWS = [{"type": "train", "step": 1, "loss": 0.69, "rewards/chosen": 0.0, "rewards/margins": 0.0,
         "rewards/accuracies": 0.5},
        {"type": "train", "step": 2, "loss": 0.40, "rewards/chosen": 0.3, "rewards/margins": 0.9,
         "rewards/accuracies": 1.0},
        {"type": "eval", "step": 2, "eval_loss": 0.5, "eval_rewards/margins": 0.7}]


def test_only_the_metrics_the_rows_carry_are_drawn_and_held_back_rows_are_dotted():
    assert plotted(ROWS, NAMES) == ["rewards/chosen", "rewards/margins", "rewards/accuracies"]
    fig = method_figure(ROWS, NAMES, "en")
    by_name = {d.name: d for d in fig.data}
    assert set(by_name) == {"reward of the chosen answers", "margin (chosen − rejected)",
                            "margin (chosen − rejected) · eval", "pairs where the chosen answer wins"}
    assert by_name["margin (chosen − rejected) · eval"].line.dash == "dot"
    assert list(by_name["margin (chosen − rejected)"].y) == [0.0, 0.9]
    assert by_name["pairs where the chosen answer wins"].yaxis == "y2" and fig.layout.yaxis2.range == (0, 1.02)


def test_log_probabilities_and_eval_names_are_not_drawn_on_the_rewards_scale():
    rows = [{"type": "train", "step": 1, "rewards/margins": 0.2, "logps/chosen": -150.0},
            {"type": "eval", "step": 1, "eval_rewards/margins": 0.1, "eval_logps/chosen": -149.0}]
    names = ["rewards/margins", "logps/chosen", "eval_rewards/margins", "eval_logps/chosen"]
    assert plotted(rows, names) == ["rewards/margins"]
    assert [d.name for d in method_figure(rows, names, "en").data] == ["margin (chosen − rejected)",
                                                                       "margin (chosen − rejected) · eval"]


def test_a_metric_without_words_keeps_its_name_and_chinese_labels_are_used():
    fig = method_figure([{"step": 1, "rewards/facts/mean": 0.2}], ["rewards/facts/mean"], "zh")
    assert [d.name for d in fig.data] == ["rewards/facts/mean"]
    assert method_figure(ROWS, NAMES, "zh").data[0].name == "选中回答的奖励"
    assert len(method_figure([], NAMES, "en").layout.annotations) == 1     # the "appears here" note


def test_the_pair_shows_its_text_escaped_and_marks_the_answers_only():
    out = pair_html({"row": 7, "prompt": [["<user>How much?", False]], "chosen": [["$129", True]],
                     "rejected": [["$99", True], ["<end>", False]]}, "en")
    assert "Row 7" in out and "&lt;user&gt;How much?" in out and "<user>" not in out
    assert out.count("background:#bbf7d0") == 2          # $129 and $99; the prompt and <end> carry no loss
    assert out.index("$129") < out.index("$99")          # chosen on the left
    assert pair_html(None, "en") == ""


def test_the_data_tab_previews_the_demo_pairs_as_dpo_reads_them():
    from studio.config import StudioConfig, merge
    from studio.ui.bindings import data_kind, source_value
    from studio.ui.services import Services

    assert data_kind("demo-preference") == "demo-preference" == source_value("data", "demo-preference", "x")
    cfg = merge(StudioConfig(), {"data": {"file": "demo-preference"}, "training": {"method": "dpo"},
                                 "model": {"source": "/no/model/here"}})      # no tokenizer: the fallback template
    svc = Services()
    assert svc.inspect_data(cfg).shape == "pair"
    pair = svc.pair_example(cfg, 0)
    chosen, rejected = "".join(p[0] for p in pair["chosen"]), "".join(p[0] for p in pair["rejected"])
    assert chosen != rejected and "304" in chosen and "304" not in rejected       # one wrong fact in the rejected
    assert all(not on for _, on in pair["prompt"]) and all(on for _, on in pair["chosen"])
    sft = merge(cfg, {"training": {"method": "sft"}})
    assert svc.inspect_data(sft).shape == "conversation" and svc.pair_example(sft, 0) is not None   # still shown
