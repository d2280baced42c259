"""The config sections of the training methods other than SFT: ``preference`` (DPO, KTO, ORPO, SimPO) and ``grpo``.
``studio.config`` imports them into ``StudioConfig``; their checks are in ``config_checks.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .config_fields import DPO_LOSSES, REWARDS, _f, split_names
from .errors import ConfigError


@dataclass
class PreferenceConfig:
    """Settings of the preference methods (training.method dpo, kto, orpo, simpo); SFT ignores them."""
    beta: float = _f(0.0, "How strongly to prefer the chosen answer over the rejected one (how far the model may "
                     "move from where it started). 0 = the method's usual value: 0.1 for DPO, KTO and ORPO, 2.0 for "
                     "SimPO. Higher keeps the model closer to its start.", limits=(0, 100), typical="0.1",
                     zh="偏向被选中回答的力度（模型可以离开起点多远）。0 = 该方法的常用值：DPO、KTO、ORPO 为 0.1，"
                        "SimPO 为 2.0。越大越贴近起点。",
                     label=("Preference strength (beta)", "偏好强度（beta）"))
    loss: str = _f("sigmoid", "DPO only: how the preference is scored. 'sigmoid' is the DPO paper's loss; 'ipo' "
                   "(IPO) does not push the margin without end, so it overfits less on small or noisy data; 'hinge' "
                   "stops once the margin is large enough (SLiC); 'bco_pair', 'sppo_hard', 'nca_pair', 'apo_zero' and "
                   "'apo_down' are variants from later papers.", DPO_LOSSES,
                   zh="仅 DPO：如何给偏好打分。'sigmoid' 是 DPO 论文的损失；'ipo'（IPO）不会无限拉大差距，在小数据或噪声数据上"
                      "更不易过拟合；'hinge' 在差距足够大后停止（SLiC）；'bco_pair'、'sppo_hard'、'nca_pair'、'apo_zero'、"
                      "'apo_down' 是后续论文的变体。",
                   label=("DPO loss", "DPO 损失"))
    sft_weight: float = _f(0.0, "DPO only: also learn to write the chosen answer, with this weight (RPO; 1.0 is "
                           "typical). Helps keep facts learned earlier. 0 = off.", limits=(0, 100),
                           zh="仅 DPO：同时学习写出被选中的回答，权重为此值（RPO；常用 1.0）。有助于保留之前学到的事实。"
                              "0 = 关闭。",
                           label=("Keep writing the chosen answer (weight)", "同时学习被选中回答（权重）"))
    simpo_gamma: float = _f(0.5, "SimPO only: the margin the chosen answer should win by (the paper used 0.5 to 1.5 "
                            "with beta 2.0).", limits=(0, 100),
                            zh="仅 SimPO：被选中回答应领先的目标差距（论文在 beta 为 2.0 时用 0.5 到 1.5）。",
                            label=("SimPO target margin", "SimPO 目标差距"))
    balance: str = _f("auto", "KTO only: how good and bad answers are weighed. 'auto' weighs the rarer kind up so "
                      "both kinds count about equally (as the KTO paper advises for unbalanced data); 'manual' uses "
                      "the two weights below.", ("auto", "manual"),
                      zh="仅 KTO：如何给好回答和坏回答加权。“自动”提高较少一类的权重，使两类的影响大致相当（KTO 论文对不"
                         "平衡数据的建议）；“手动”使用下面两个权重。",
                      label=("KTO balance", "KTO 平衡"))
    desirable_weight: float = _f(1.0, "KTO only, with balance 'manual': the weight of the answers marked good.",
                                 limits=(0, 100),
                                 zh="仅 KTO，平衡为“手动”时：标为好的回答的权重。",
                                 label=("Weight of good answers", "好回答的权重"))
    undesirable_weight: float = _f(1.0, "KTO only, with balance 'manual': the weight of the answers marked bad.",
                                   limits=(0, 100),
                                   zh="仅 KTO，平衡为“手动”时：标为坏的回答的权重。",
                                   label=("Weight of bad answers", "坏回答的权重"))


@dataclass
class GrpoConfig:
    """Settings of ``training.method: grpo`` (studio/training/methods/grpo.py); other methods ignore them."""
    REWARD_NAMES: ClassVar[tuple[str, ...]] = REWARDS     # what config_checks accepts in ``rewards``

    rewards: str = _f("facts", "What a good answer is, as names separated by commas: 'facts' (it states the numbers, "
                      "codes and names of the row's answer, and contradicts none), 'format' (its last line matches "
                      "grpo.format_pattern), 'length' (its word count lies between grpo.length_min_words and "
                      "grpo.length_max_words), 'similarity' (its wording is close to the row's answer).",
                      zh="怎样才算好回答，用逗号分隔的名称：'facts'（说出该行回答中的数字、代码和名称，且不与之矛盾）、"
                         "'format'（最后一行符合 grpo.format_pattern）、'length'（字数在 grpo.length_min_words 与 "
                         "grpo.length_max_words 之间）、'similarity'（措辞接近该行的回答）。",
                      label=("Rewards", "奖励"))
    reward_weights: str = _f("", "How much each reward counts, numbers separated by commas in the order of "
                             "grpo.rewards (e.g. '1, 0.5'). Empty = all count the same.",
                             zh="每项奖励的权重，用逗号分隔的数字，顺序与 grpo.rewards 相同（如 '1, 0.5'）。留空 = 同等权重。",
                             label=("Reward weights", "奖励权重"))
    generations: int = _f(4, "Answers the model writes to each question per step; they are compared with each other, "
                          "so at least 2. More compare better and cost proportionally more time: on a CPU (one core) "
                          "one step of the built-in model, 1 question x 4 answers of 64 tokens, took 12-21 s; on one "
                          "H100 GPU a 1B model in 4-bit, 4 questions x 8 answers of 128 tokens, 8.5 s (docs/GRPO.md).",
                          limits=(2, 64), typical="4-16",
                          zh="每一步模型对每个问题写出的回答数；这些回答相互比较，所以至少 2 个。越多比较越准，耗时也按比例增加。"
                             "在 CPU（单核）上，内置模型每步 1 个问题 × 4 个 64 token 的回答需 12-21 秒；"
                             "在一块 H100 GPU 上，4 位量化的 1B 模型每步 4 个问题 × 8 个 128 token 的回答需 8.5 秒（docs/GRPO.md）。",
                          label=("Answers per question", "每个问题的回答数"))
    max_answer_tokens: int = _f(128, "Longest answer the model writes while training, in tokens; longer ones are cut "
                                "there.", limits=(1, 32_768), typical="64-512",
                                zh="训练时模型写出的回答的最大 token 数；更长的会在此截断。",
                                label=("Max answer tokens", "回答最大 token 数"))
    format_pattern: str = _f(r"Answer: .+", "With the 'format' reward: the pattern (a Python regular expression) the "
                             "answer's last line must match, e.g. 'Answer: .+'.",
                             zh="使用 'format' 奖励时：回答最后一行必须匹配的模式（Python 正则表达式），如 'Answer: .+'。",
                             label=("Required last line", "要求的最后一行"))
    length_min_words: int = _f(5, "With the 'length' reward: the fewest words a full-score answer has (Chinese: "
                               "characters count as words).", limits=(0, 100_000),
                               zh="使用 'length' 奖励时：满分回答的最少字数（中文按字计）。",
                               label=("Fewest words", "最少字数"))
    length_max_words: int = _f(80, "With the 'length' reward: the most words a full-score answer has; the score falls "
                               "off outside the range.", limits=(1, 100_000),
                               zh="使用 'length' 奖励时：满分回答的最多字数；超出范围分数逐渐降低。",
                               label=("Most words", "最多字数"))
    kl_beta: float = _f(0.0, "How strongly answers are held near the base model's (the KL penalty). 0, the default of "
                        "TRL and of recent GRPO work (DAPO, Dr. GRPO), skips it and the extra pass it costs; 0.001-0.04 "
                        "keeps the tuned model from drifting far from where the run started: the base model with the "
                        "adapter switched off, or, for a run started from another run's adapter, that run's model.",
                        limits=(0, 10), typical="0-0.04",
                        zh="让回答保持接近基础模型的程度（KL 惩罚）。0 是 TRL 和近来 GRPO 工作（DAPO、Dr. GRPO）的默认值，"
                           "跳过它及其额外的计算；0.001-0.04 防止微调后的模型偏离起点太远：参照是关闭适配器的基础模型，"
                           "从另一次运行的适配器开始时则是那次运行的模型。",
                        label=("KL penalty (beta)", "KL 惩罚（beta）"))

    def reward_list(self) -> list[str]:
        """The names of ``rewards`` (commas or spaces between them)."""
        return split_names(self.rewards)

    def weight_list(self) -> list[float] | None:
        """The numbers of ``reward_weights`` (None: all equal); a word that is no number is refused."""
        items = split_names(self.reward_weights)
        if not items:
            return None
        try:
            return [float(x) for x in items]
        except ValueError:
            raise ConfigError("grpo.reward_weights must be numbers separated by commas, not {value!r}.",
                              code="config.reward_weights", value=self.reward_weights) from None
