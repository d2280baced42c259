"""Typed configuration of a fine-tuning run: model, data, LoRA, training, generation.

The dataclasses are the single source of truth. Help text lives once, in each field's
metadata (``help``), and the UI reuses it. ``StudioConfig`` round-trips to YAML;
``validate()`` raises ``ConfigError`` with a message a non-programmer can act on (the checks are in
``config_checks.py``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from .config_fields import (  # noqa: F401 - the words of the settings, read from here by the rest of the studio
    QUANTIZATIONS, ALL_LINEAR, COMPUTE_DTYPES, TEMPLATES, FORMATS, SCHEDULERS, CHECKPOINTING, TILE_MLP,
    MLP_TILE_TOKENS, ATTENTIONS, STRATEGIES, REPORT_TO, OPTIMIZERS, METHODS, REFERENCE_METHODS, DPO_LOSSES,
    REWARDS, ADAPTERS, PROMPT_ADAPTERS, LORA_INITS, _f, split_names)
from .config_methods import GrpoConfig, PreferenceConfig
from .errors import ConfigError


@dataclass
class ModelConfig:
    source: str = _f("default", "Which base model to fine-tune: 'default' (the built-in SmolLM2-135M-Instruct, works offline), "
                     "a Hugging Face Hub id such as 'Qwen/Qwen2.5-0.5B-Instruct', a folder on this computer, or a .gguf file.",
                     zh="要微调的基础模型：'default'（内置 SmolLM2-135M-Instruct，可离线使用）、Hugging Face Hub 模型"
                        " ID（如 'Qwen/Qwen2.5-0.5B-Instruct'）、本机文件夹或 .gguf 文件。",
                     label=("Hub id, folder or .gguf file", "Hub 模型 ID、文件夹或 .gguf 文件"))
    quantization: str = _f("none", "How the base model is stored while training. '4bit-nf4' is QLoRA (least memory), "
                           "'8bit' halves memory, 'none' keeps 16-bit weights (fastest, most memory).", QUANTIZATIONS,
                           zh="训练时基础模型的存储方式。'4bit-nf4' 即 QLoRA（最省显存），'8bit' 显存减半，'none' 保"
                              "持 16 位权重（最快，最占显存）。",
                           label=("Load method", "加载方式"))
    double_quant: bool = _f(True, "Also compress the 4-bit scaling factors (saves about 0.4 bits per weight). Only used with 4-bit.",
                            zh="对 4 位量化的缩放因子再压缩一次（每个权重约省 0.4 位）。仅用于 4 位。",
                            label=("Double quantization", "双重量化"))
    compute_dtype: str = _f("auto", "Number format for the maths. 'auto' picks bfloat16 on GPUs that support it, "
                            "float16 on older GPUs, and on a CPU bfloat16 where the processor computes it natively "
                            "(about twice float32's speed), else float32.", COMPUTE_DTYPES,
                            zh="计算所用的数值格式。'auto' 在支持的 GPU 上用 bfloat16，较旧的 GPU 用 float16；CPU 原生"
                               "支持 bfloat16 时用它（约为 float32 的两倍速度），否则用 float32。",
                            label=("Compute precision", "计算精度"))
    trust_remote_code: bool = _f(False, "Run Python code shipped with the model. Only turn it on for models from people you trust.",
                                 zh="运行模型附带的 Python 代码。只对你信任的人发布的模型开启。",
                                 label=("Allow the model's own code (remote code)", "允许运行模型自带代码（remote code）"))


@dataclass
class DataConfig:
    file: str = _f("demo", "The training data: 'demo' (built-in support FAQ), a .jsonl/.json/.csv/.tsv/.parquet file, "
                   "or a Hugging Face dataset id.",
                   zh="训练数据：'demo'（内置客服问答）、.jsonl/.json/.csv/.tsv/.parquet 文件，或 Hugging Face 数据集"
                      " ID。",
                   label=("File path or Hub dataset id", "文件路径或 Hub 数据集 ID"))
    format: str = _f("auto", "The shape of the rows. 'auto' detects alpaca, sharegpt, messages, prompt/completion, text "
                     "and preference data (chosen/rejected: trained on the chosen answers); "
                     "'mapping' uses the columns named in data.prompt_column, data.answer_column and "
                     "data.system_column.", FORMATS,
                     zh="每行数据的结构。'auto' 自动识别 alpaca、sharegpt、messages、prompt/completion、纯文本和偏好"
                        "数据（chosen/rejected：用 chosen 回答训练）；'mapping' 使用下方的列映射。",
                     label=("Format", "数据格式"))
    prompt_column: str = _f("", "With format 'mapping': the column that holds the question or instruction.",
                            zh="格式为 'mapping' 时：存放问题或指令的列。",
                            label=("Prompt column", "提问列"))
    answer_column: str = _f("", "With format 'mapping': the column that holds the answer the model should learn.",
                            zh="格式为 'mapping' 时：存放模型应学会的回答的列。",
                            label=("Answer column", "回答列"))
    system_column: str = _f("", "With format 'mapping' (optional): the column that holds a system prompt.",
                            zh="格式为 'mapping' 时（可选）：存放系统提示的列。",
                            label=("System prompt column", "系统提示列"))
    encoding: str = _f("auto", "The text encoding of the file. 'auto' reads UTF-8 and recognises the others "
                       "(e.g. cp1252 from Excel, GB18030, UTF-16); name one (utf-8, cp1252, latin-1, gb18030...) "
                       "when the preview shows garbled letters.",
                       zh="文件的文本编码。'auto' 读取 UTF-8 并识别其他编码（如 Excel 的 cp1252、GB18030、UTF-16）；"
                          "预览出现乱码时，请指定一种编码（utf-8、cp1252、latin-1、gb18030……）。",
                       label=("Text encoding", "文本编码"))
    template: str = _f("auto", "How conversations are turned into text. 'auto' uses the model's own chat template "
                       "and falls back to chatml when it has none.", TEMPLATES,
                       zh="对话如何变成文本。'auto' 使用模型自带的对话模板，没有时退回 chatml。",
                       label=("Chat template", "对话模板"))
    max_length: int = _f(512, "Longest training example in tokens. Longer rows are cut or dropped (data.overlong).",
                         limits=(16, 1_048_576), typical="512-2048",
                         zh="训练样本的最大 token 数。更长的行会被截断或丢弃（见下方设置）。",
                         label=("Max sequence length", "最大序列长度"))
    overlong: str = _f("truncate", "What to do with rows longer than the maximum length.", ("truncate", "drop"),
                       zh="超过最大长度的行如何处理。",
                       label=("Rows that are too long", "超长的行"))
    train_on: str = _f("assistant", "Which tokens the model learns from: only the assistant's answers (recommended) "
                       "or the whole conversation.", ("assistant", "all"),
                       zh="模型从哪些 token 学习：只学助手的回答（推荐），或整段对话。",
                       label=("Learn from", "学习内容"))
    validation: float = _f(0.05, "Rows held back to measure progress: a fraction below 1 (0.1 = 10%) or a count of rows "
                           "(e.g. 20). 0 turns evaluation off.", limits=(0, None), typical="0.1",
                           zh="留作验证的行：小于 1 的比例（0.1 = 10%）或行数（如 20）。0 表示不做评估。",
                           label=("Validation rows", "验证集"))
    max_rows: int = _f(0, "Use at most this many rows (0 = all). Handy for a quick trial.", limits=(0, 1_000_000_000),
                       zh="最多使用多少行（0 = 全部）。适合快速试跑。",
                       label=("Use at most rows", "最多使用行数"))
    score_prompts: str = _f(
        "auto", "Questions asked after training to check what the model learned: each answer is scored by the facts "
        "of its reference (numbers, codes, names). 'auto' uses the demo's held-out questions for the demo data, "
        "else up to 20 of the validation rows; a .jsonl/.csv file of question + answer; 'none' skips it.",
        zh="训练结束后用来检验模型学到了什么的问题：每个回答都按参考答案中的事实（数字、代码、名称）打分。"
           "'auto' 对演示数据使用演示的保留问题，否则使用最多 20 条验证行；也可以给出一个包含问题和答案的 .jsonl/.csv 文件；"
           "'none' 表示不检验。",
        label=("Questions to check after training", "训练后检验的问题"))


@dataclass
class LoraConfig:
    r: int = _f(16, "LoRA rank: the size of the small trainable matrices. 8-64 is typical; higher learns more "
                "but uses more memory.", limits=(1, 4096), typical="8-64",
                zh="LoRA 秩：可训练小矩阵的大小。常用 8-64；越大学得越多，也越占显存。",
                label=("LoRA rank r", "LoRA 秩 r"))
    alpha: int = _f(32, "LoRA alpha: scales the adapter's effect (often 2 x r, or 16 in the QLoRA paper).",
                    limits=(1, 65_536), typical="2 x r",
                    zh="LoRA alpha：缩放适配器的作用（常取 2 × r，QLoRA 论文中为 16）。",
                    label=("LoRA alpha", "LoRA alpha"))
    dropout: float = _f(0.05, "Dropout on the adapter during training, between 0 and 1. 0.05-0.1 helps against "
                        "overfitting.", limits=(0, 0.99), typical="0.05-0.1",
                        zh="训练时适配器上的 dropout，介于 0 和 1 之间。0.05-0.1 有助于防止过拟合。",
                        label=("LoRA dropout", "LoRA dropout"))
    target_modules: Any = _f(ALL_LINEAR, "Which layers get adapters: 'all-linear' or a list of layer names "
                             "such as [q_proj, v_proj].",
                             zh="给哪些层加适配器：'all-linear'（所有线性层）或层名列表，如 q_proj、v_proj。",
                             label=("Target modules", "目标模块"))
    use_dora: bool = _f(False, "DoRA: a LoRA variant that often learns better at low rank; slower.",
                        zh="DoRA：一种 LoRA 变体，低秩时往往学得更好；速度更慢。",
                        label=("DoRA", "DoRA"))
    use_rslora: bool = _f(False, "rsLoRA: scales by alpha/sqrt(r) instead of alpha/r, which keeps high ranks stable.",
                          zh="rsLoRA：按 alpha/sqrt(r) 而不是 alpha/r 缩放，使高秩训练更稳定。",
                          label=("rsLoRA", "rsLoRA"))
    bias: str = _f("none", "Whether bias terms are trained too.", ("none", "lora_only", "all"),
                   zh="是否同时训练偏置项。",
                   label=("Train biases", "训练偏置"))
    adapter: str = _f("lora", "What kind of adapter is trained. 'lora': two small matrices per target layer "
                      "(size set by r); merges into the model, every export works. 'loha' / 'lokr': LoRA's cousins "
                      "from Stable Diffusion (Hadamard / Kronecker products; LoHa about twice LoRA's size at the same "
                      "r, LoKr much smaller); they merge and export like LoRA, 16-bit base only. 'ia3': learns one "
                      "scale per channel of the k, v and down projections (tiny, r and alpha unused); merges and "
                      "exports. 'prefix', 'prompt', 'llama-adapter': learn extra virtual tokens (lora.virtual_tokens) "
                      "the model reads before the text (prefix: at every layer; prompt: at the input only; "
                      "llama-adapter: gated, at the top lora.adapter_layers layers; prefix trains without gradient checkpointing); very small, but they cannot be "
                      "merged into the model: chat and the adapter export work, merged and GGUF exports do not, "
                      "and each batch is padded (no packing). On a 4-bit / 8-bit base: lora, ia3, prefix and prompt.", ADAPTERS,
                      zh="训练哪种适配器。'lora'：每个目标层两个小矩阵（大小由 r 决定）；可合并进模型，所有导出都可用。"
                         "'loha' / 'lokr'：LoRA 的近亲（Hadamard / Kronecker 积；同样的 r 下 LoHa 约为 LoRA 的两倍，"
                         "LoKr 小得多）；可像 LoRA 一样合并和导出，仅限 16 位基座。'ia3'：为 k、v 和 down 投影的每个通道"
                         "学一个缩放（极小，不用 r 和 alpha）；可合并和导出。'prefix'、'prompt'、'llama-adapter'：学习模型"
                         "在文本前读取的虚拟 token（lora.virtual_tokens；prefix 在每一层，prompt 只在输入处，llama-adapter "
                         "带门控、在最上面 lora.adapter_layers 层；prefix 训练时不做梯度检查点）；非常小，但无法合并进模型：对话和适配器导出可用，"
                         "合并与 GGUF 导出不可用，且每批数据会填充（不打包）。4 位 / 8 位基座上可用：lora、ia3、prefix 和 prompt。",
                      label=("Adapter type", "适配器类型"))
    init: str = _f("default", "How a LoRA adapter starts (lora.adapter 'lora' only). 'default': from zero, so training "
                   "starts at the base's answers. 'pissa' / 'olora': from the main directions of each weight (a fast "
                   "SVD / a QR decomposition), which often learns faster; they move those directions out of the base "
                   "weights while training, so the studio saves the adapter converted to a plain LoRA of twice the rank "
                   "that works on the original base: chat, merge and every export use the original model as usual. "
                   "16-bit base only, not with DoRA.", LORA_INITS,
                   zh="LoRA 适配器如何初始化（仅 lora.adapter 为 'lora' 时）。'default'：从零开始，训练从基座的回答出发。"
                      "'pissa' / 'olora'：从每个权重的主方向开始（快速 SVD / QR 分解），往往学得更快；训练时这些方向会从"
                      "基座权重中移出，所以工作室保存时把适配器转换为秩加倍的普通 LoRA，可直接用于原始基座：对话、合并和"
                      "所有导出照常使用原始模型。仅限 16 位基座，不能与 DoRA 同用。",
                   label=("LoRA initialisation", "LoRA 初始化"))
    virtual_tokens: int = _f(20, "For 'prefix', 'prompt' and 'llama-adapter' adapters: how many virtual tokens are "
                             "learned (their size; r is not used by them). 10-30 is typical.", limits=(1, 1024),
                             typical="10-30",
                             zh="用于 'prefix'、'prompt' 和 'llama-adapter' 适配器：学习多少个虚拟 token（它们的大小；"
                                "不使用 r）。常用 10-30。",
                             label=("Virtual tokens", "虚拟 token 数"))
    adapter_layers: int = _f(0, "For 'llama-adapter': how many of the top layers get the gated adapter tokens "
                             "(0 = every layer).", limits=(0, 1024),
                             zh="用于 'llama-adapter'：最上面多少层加入带门控的适配器 token（0 = 所有层）。",
                             label=("Adapter layers", "适配器层数"))


@dataclass
class TrainingConfig:
    method: str = _f("sft", "How the model learns from the rows. 'sft' (supervised fine-tuning): it learns to write "
                     "each row's answer (conversation data). 'dpo', 'orpo', 'simpo' and 'kto' learn from preferences and "
                     "need preference data: 'dpo' compares a chosen and a rejected answer to the same prompt and moves "
                     "the model towards the chosen one, measured against the model as it started; 'orpo' does the same "
                     "with no starting model to compare with, and also learns to write the chosen answer (can start "
                     "from a base model); 'simpo' compares the two answers by their average word likelihood, with no "
                     "starting model either (light on memory); 'kto' needs only one answer per prompt, marked good or "
                     "bad. Preference methods are usually run after an SFT run ('studio train --from-run'). 'grpo': the "
                     "model answers each question several times itself, the answers are scored by the rewards of the "
                     "grpo section (the facts of the row's answer, a required last line, a length) and it learns to "
                     "give the better ones; the batch size then counts questions.",
                     METHODS,
                     zh="模型如何从数据中学习。'sft'（监督微调）：学习写出每行的回答（对话数据）。'dpo'、'orpo'、'simpo' 和 "
                        "'kto' 从偏好中学习，需要偏好数据：'dpo' 比较同一提示下被选中和被拒绝的两个回答，让模型偏向被选中的"
                        "回答，并以训练开始时的模型为参照；'orpo' 做同样的比较但不需要参照模型，同时学习写出被选中的回答（可"
                        "直接从基础模型开始）；'simpo' 按两个回答的平均词概率比较，也不需要参照模型（省显存）；'kto' 每个提示"
                        "只需一个回答，标为好或坏。偏好方法通常在一次 SFT 运行之后进行（'studio train --from-run'）。'grpo'："
                        "模型自己把每个问题回答多次，按 grpo 部分的奖励（是否说出该行回答中的事实、要求的最后一行、长度）给这"
                        "些回答打分，并学着给出更好的回答；此时批大小按问题计数。",
                     label=("Training method", "训练方法"))
    epochs: float = _f(0.0, "How many times to go through the data; 0 = auto: 3 times for up to 2,000 rows, 2 for up "
                       "to 10,000, once above (a small data set must be read several times for its facts to stick). "
                       "Ignored when max steps is set.", limits=(0, 1000),
                       zh="遍历数据的次数；0 = 自动：不超过 2,000 行时 3 次，不超过 10,000 行时 2 次，更多时 1 次"
                          "（小数据集要多读几遍才能记住其中的事实）。设置了最大步数时忽略此项。",
                       label=("Epochs", "训练轮数"))
    max_steps: int = _f(0, "Stop after this many optimizer steps (0 = use epochs).", limits=(0, 1_000_000),
                        zh="训练这么多个优化步后停止（0 = 按轮数）。",
                        label=("Max steps", "最大步数"))
    batch_size: int = _f(4, "Examples per step on the device. Lower it if you run out of memory.", limits=(1, 65_536),
                         zh="每步在设备上处理的样本数。显存不足时调小。",
                         label=("Batch size", "批大小"))
    grad_accum: int = _f(1, "Gradient accumulation: steps to add up before each update. "
                         "Effective batch = batch size x this.", limits=(1, 65_536),
                         zh="梯度累积：累积多少步再更新一次。有效批大小 = 批大小 × 此值。",
                         label=("Gradient accumulation", "梯度累积"))
    learning_rate: float = _f(2e-4, "How big each update is. 1e-4 to 3e-4 is typical for LoRA.", limits=(0, 1),
                              zh="每次更新的幅度。LoRA 常用 1e-4 到 3e-4。",
                              label=("Learning rate", "学习率"))
    scheduler: str = _f("cosine", "How the learning rate changes over the run.", SCHEDULERS,
                        zh="学习率在训练过程中如何变化。",
                        label=("LR schedule", "学习率调度"))
    warmup_ratio: float = _f(0.03, "Fraction of the run spent raising the learning rate from 0.", limits=(0, 0.99),
                             typical="0.03",
                             zh="训练开始时学习率从 0 逐渐升高所占的比例。",
                             label=("Warmup ratio", "预热比例"))
    weight_decay: float = _f(0.0, "Weight decay (a mild brake on large weights).", limits=(0, None),
                             zh="权重衰减（对过大权重的轻微约束）。",
                             label=("Weight decay", "权重衰减"))
    optimizer: str = _f("adamw_torch", "Optimizer. 'paged_adamw_8bit' saves memory on NVIDIA GPUs (QLoRA paper).", OPTIMIZERS,
                        zh="优化器。'paged_adamw_8bit' 在 NVIDIA GPU 上更省显存（QLoRA 论文）。",
                        label=("Optimizer", "优化器"))
    max_grad_norm: float = _f(1.0, "Clip gradients to this norm (0.3 in the QLoRA paper).", limits=(0, None),
                              zh="把梯度裁剪到此范数（QLoRA 论文中为 0.3）。",
                              label=("Gradient clipping", "梯度裁剪"))
    gradient_checkpointing: str = _f("auto", "Recompute activations instead of storing them: much less memory, "
                                     "about 30% slower. 'auto' measures your longest batch once before training "
                                     "and checkpoints only as many layers as this GPU needs (with 'offload' when "
                                     "even every layer does not fit). 'offload' checkpoints every layer and keeps "
                                     "each layer's input in the computer's memory (RAM) instead of the GPU's: the "
                                     "least GPU memory, for very long rows, a little slower, and it needs that RAM "
                                     "(tokens x layers x hidden size x 2 bytes).", CHECKPOINTING,
                                     zh="重新计算激活值而不是保存它们：大幅省显存，约慢 30%。“自动”会在训练前用最长的"
                                        "一批数据测量一次，只对这块 GPU 需要的层做检查点（所有层都做检查点仍放不下时用 "
                                        "'offload'）。'offload' 对所有层做检查点，并把每层的输入放在电脑内存（RAM）"
                                        "而不是显存里：显存最省，适合很长的行，稍慢，且需要这么多内存"
                                        "（token 数 x 层数 x 隐藏维度 x 2 字节）。",
                                     label=("Gradient checkpointing", "梯度检查点"))
    tile_mlp: str = _f("auto", "Run each layer's MLP over long rows in tiles of 8,192 tokens, each tile recomputed "
                       "in the backward pass, so its large intermediate values exist for one tile at a time: for "
                       "rows of tens of thousands of tokens it saves gigabytes (11 GB at 131,072 tokens on an 8B "
                       "model), a little slower. Same results. 'auto' tiles when checkpointing is 'offload' (set, "
                       "or chosen by 'auto'); 'on' always tiles rows longer than a tile; 'off' never.", TILE_MLP,
                       zh="对很长的行，把每层的 MLP 按每块 8,192 个 token 分块计算，反向传播时逐块重新计算，"
                          "使其很大的中间值每次只存在一块：行长数万 token 时可省下数 GB 显存（8B 模型 131,072 "
                          "token 时约 11 GB），稍慢，结果相同。“自动”在检查点为 'offload'（手动设置或由“自动”选择）"
                          "时分块；'on' 总是对长于一块的行分块；'off' 从不分块。",
                       label=("MLP tiling", "MLP 分块"))
    seed: int = _f(42, "Random seed, so a run can be repeated.", limits=(0, 2**32 - 1),
                   zh="随机种子，便于复现一次训练。",
                   label=("Seed", "随机种子"))
    logging_steps: int = _f(1, "Record the loss every this many steps.", limits=(1, 1_000_000),
                            zh="每隔多少步记录一次损失。",
                            label=("Log every (steps)", "每隔多少步记录"))
    eval_steps: int = _f(0, "Measure the validation loss every this many steps (0 = only at the end).",
                         limits=(0, 1_000_000),
                         zh="每隔多少步计算一次验证损失（0 = 只在结束时）。",
                         label=("Eval every (steps)", "每隔多少步评估"))
    save_steps: int = _f(0, "Save a checkpoint (the adapter and optimizer state, never the base model) every this "
                         "many steps, so a stopped or crashed run can be resumed. 0 = automatic: about every "
                         "tenth of the run, at most every 200 steps.", limits=(0, 1_000_000),
                         zh="每隔多少步保存一次检查点（0 = 只在结束时）。",
                         label=("Checkpoint every (steps)", "每隔多少步保存"))
    packing: bool = _f(True, "Join each step's examples into one sequence with no padding (each example still "
                       "sees only itself). Same results, faster and less memory; off pads every example to the "
                       "longest of its batch.",
                       zh="把每一步的样本首尾相接成一条序列，不补齐（每个样本仍只看到自己）。结果相同，更快、更省显存"
                          "；关闭则把样本补齐到本批最长的长度。",
                       label=("Padding-free batches", "无填充批次"))
    group_by_length: bool = _f(True, "DPO: put pairs of similar length in the same batch, so less padding is "
                               "computed (DPO's batches are padded: chosen and rejected to the longest of the batch). "
                               "The same pairs, the same passes, in a less random order; off = fully shuffled.",
                               zh="DPO：把长度相近的样本对放进同一批，少算填充（DPO 的批次要把选中和拒绝的回答补齐到本批最长）。"
                                  "样本对与遍数不变，只是顺序不那么随机；关闭 = 完全打乱。",
                               label=("Group pairs by length", "按长度分组"))
    attention: str = _f("auto", "Attention kernel. 'auto' uses PyTorch's variable-length FlashAttention for "
                        "padding-free batches on NVIDIA GPUs and SDPA elsewhere.", ATTENTIONS,
                        zh="注意力内核。“auto”在 NVIDIA GPU 上对无填充批次使用 PyTorch 的变长 FlashAttention，其他情"
                           "况用 SDPA。",
                        label=("Attention kernel", "注意力内核"))
    neftune_noise_alpha: float = _f(
        0.0, "NEFTune: random noise added to the word embeddings while training, which often makes answers to "
        "instructions better (the paper used 5-15). 0 = off.", limits=(0, 100),
        zh="NEFTune：训练时给词向量加入随机噪声，常能提升指令回答的质量（论文中用 5-15）。0 = 关闭。",
        label=("NEFTune noise", "NEFTune 噪声"))
    fused_kernels: bool = _f(True, "Use Liger's fused GPU kernels (RMSNorm, RoPE, SwiGLU) when liger-kernel is "
                             "installed. Ignored on a CPU.",
                             zh="安装了 liger-kernel 时使用 Liger 的融合 GPU 内核（RMSNorm、RoPE、SwiGLU）。CPU 上忽"
                                "略。",
                             label=("Fused GPU kernels (Liger)", "融合 GPU 内核（Liger）"))
    report_to: str = _f("none", "Also send the training curves to an experiment tracker: 'tensorboard' (event files in "
                        "the run folder's tensorboard/ folder: `tensorboard --logdir <run>/tensorboard`), 'wandb' "
                        "(Weights & Biases, your account or its offline mode) or 'mlflow' (its tracking server, or "
                        "./mlruns). The tracker's package must be installed. The studio's own chart works either way.",
                        REPORT_TO,
                        zh="把训练曲线同时发送到实验跟踪工具：'tensorboard'（事件文件写在运行文件夹的 tensorboard/ 里："
                           "`tensorboard --logdir <运行>/tensorboard`）、'wandb'（Weights & Biases，你的账户或其离线"
                           "模式）或 'mlflow'（它的跟踪服务器，或 ./mlruns）。需要安装该工具的包。工作室自己的图表不受影响。",
                        label=("Report to", "发送训练曲线到"))
    gpus: int = _f(1, "How many GPUs of this computer train the run together (0 = all of them). With more than "
                   "one, each GPU trains on its own share of every step's rows: the global batch is batch size x "
                   "accumulation x GPUs.", limits=(0, 64),
                   zh="这台电脑上共同训练的 GPU 数量（0 = 全部）。多于一块时，每块 GPU 训练每一步数据中属于自己的那一"
                      "份：全局批大小 = 批大小 × 梯度累积 × GPU 数。",
                   label=("GPUs to use", "使用的 GPU 数量"))
    strategy: str = _f("auto", "How several GPUs share the work. 'ddp' keeps a whole copy of the model on each GPU "
                       "(fastest, when the model fits one card); 'fsdp' splits the frozen model weights across the "
                       "GPUs (needs 4-bit QLoRA or 16-bit weights; for a model too big for one card); 'auto' picks "
                       "ddp when the estimate fits one card, fsdp otherwise.", STRATEGIES,
                       zh="多块 GPU 如何分担工作。'ddp' 在每块 GPU 上保留完整模型（模型放得进一块卡时最快）；'fsdp' "
                          "把冻结的模型权重分摊到各块 GPU（需要 4-bit QLoRA 或 16-bit 权重；用于一块卡放不下的模型）"
                          "；“自动”在估算能放进一块卡时选 ddp，否则选 fsdp。",
                       label=("Multi-GPU strategy", "多 GPU 策略"))
    nnodes: int = _f(1, "How many computers train the run together (1 = this one only). With more than one, "
                     "start the run on the main machine, then the command the studio shows on each other machine; "
                     "the global batch counts the GPUs of every machine.", limits=(1, 64),
                     zh="共同训练的电脑数量（1 = 只用这台）。多于一台时，先在主机上开始训练，再在每台其他电脑上运行"
                        "工作室显示的命令；全局批大小按所有电脑的 GPU 总数计算。",
                     label=("Machines", "电脑数量"))
    node_rank: int = _f(0, "Which machine this is, counting from 0: 0 is the main machine, which writes the run "
                        "folder; 1, 2 ... are the others, which only lend their GPUs.", limits=(0, 63),
                        zh="这台电脑的编号，从 0 开始：0 是主机，写运行文件夹；1、2…… 是其他电脑，只出借 GPU。",
                        label=("This machine's number", "本机编号"))
    master: str = _f("", "The main machine's address and a free port, as ADDR:PORT (e.g. 192.168.1.10:29500), "
                     "reachable from every machine. Needed when training.nnodes is more than 1.",
                     zh="主机的地址和一个空闲端口，格式 ADDR:PORT（如 192.168.1.10:29500），每台电脑都必须能访问。"
                        "training.nnodes 大于 1 时必填。",
                     label=("Main machine's address", "主机地址"))
    isolate: bool = _f(False, "Train a one-GPU run in a separate process, as multi-GPU runs are. A crash of the GPU "
                       "driver then cannot take the studio down, but chat has to load the trained model again "
                       "afterwards.",
                       zh="单 GPU 训练也在独立进程中运行（与多 GPU 训练相同）。GPU 驱动崩溃不会拖垮工作室，但训练结束"
                          "后对话需要重新加载模型。",
                       label=("Train in a separate process", "在独立进程中训练"))
    output_dir: str = _f("", "Where the run folder goes (empty = a new dated folder in the studio's runs folder). "
                         "In the app: a name for the folder inside the runs folder; from the command line: any folder.",
                         zh="运行文件夹（留空 = 在工作室的 runs 文件夹里新建一个带日期的文件夹）。在应用中：runs 文件"
                            "夹里的一个名称；命令行中：任意文件夹。",
                         label=("Output folder", "输出文件夹"))


@dataclass
class GenerationConfig:
    max_new_tokens: int = _f(200, "Longest answer in tokens.", limits=(1, 32_768),
                             zh="回答的最大 token 数。",
                             label=("Max new tokens", "最多生成 token 数"))
    temperature: float = _f(0.0, "Randomness of answers: 0 always picks the likeliest word; 0.7 is more varied.",
                            limits=(0, None),
                            zh="回答的随机性：0 总是选最可能的词；0.7 更多样。",
                            label=("Temperature", "温度"))
    top_p: float = _f(0.9, "Only sample from the likeliest words that add up to this probability.", limits=(0, 1),
                      zh="只从累计概率达到此值的最可能的词中采样。",
                      label=("Top-p", "Top-p"))
    repetition_penalty: float = _f(
        1.1, "Above 1 discourages repeating the same words. 1.1 is measured: over 16 runs of the built-in model, "
        "asked the held-out demo questions greedily, 1.1 stated 57 of 128 facts right and 1.0 stated 54; it also keeps "
        "an untuned model from looping. Chat, Evaluate and the exported model all use the run's value.",
        limits=(0, None),
        zh="大于 1 时减少重复相同的词。1.1 来自测量：内置模型的 16 次运行在留出的演示问题上贪心回答，1.1 答对 128 个事实中的 57 个，"
           "1.0 答对 54 个；它还能防止未微调的模型陷入循环。聊天、评估和导出的模型都使用该运行的设置。",
        label=("Repetition penalty", "重复惩罚"))


SECTIONS = {"model": ModelConfig, "data": DataConfig, "lora": LoraConfig,
            "training": TrainingConfig, "preference": PreferenceConfig, "generation": GenerationConfig,
            "grpo": GrpoConfig}

# Bounds of numeric settings (each field's ``limits``): past them a value is a typo, not a plan (an ETA of
# 1e20 s, a sequence longer than any model reads, a seed numpy refuses). The UI's number boxes use the same.
LIMITS: dict[str, tuple[float | None, float | None]] = {
    f"{s}.{f.name}": f.metadata["limits"] for s, c in SECTIONS.items() for f in dataclasses.fields(c)
    if "limits" in f.metadata}
# What a refusal of a value outside them suggests instead (each field's ``typical``).
TYPICAL: dict[str, str] = {f"{s}.{f.name}": f.metadata["typical"] for s, c in SECTIONS.items()
                           for f in dataclasses.fields(c) if "typical" in f.metadata}


@dataclass
class StudioConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    preference: PreferenceConfig = field(default_factory=PreferenceConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    grpo: GrpoConfig = field(default_factory=GrpoConfig)
    name: str = ""

    # ---- dict / YAML -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "StudioConfig":
        return merge(cls(), d or {})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str, where: str = "the config") -> "StudioConfig":
        """The config ``text`` holds (duplicate keys, runaway nesting and self-references refused: config_yaml.py)."""
        from .config_yaml import parse
        return cls._from_data(parse(text, where))

    @classmethod
    def _from_data(cls, data: Any) -> "StudioConfig":
        if data is not None and not isinstance(data, dict):
            raise ConfigError("The config must be a YAML mapping with sections such as 'model:' and 'training:'.",
                              code="config.not_mapping")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "StudioConfig":
        p = Path(path)
        if not p.is_file():
            raise ConfigError("Config file not found: {path}", code="config.file_missing", path=str(p))
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise ConfigError("The config file {path} cannot be read: {detail}.", code="config.file_unreadable", path=str(p),
                              detail=str(e.strerror or e)) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[:e.start].count(b"\n") + 1
            raise ConfigError("The config file {path} is not UTF-8 text (the first unreadable character is on line "
                              "{line}).", code="config.not_utf8", path=str(p), line=line) from None
        from .config_yaml import parse
        data = parse(text, str(p))
        if data is None:
            # An empty file is not "all defaults": a run of the defaults would start on the demo data.
            raise ConfigError("The config file {path} is empty (it holds no settings).", code="config.empty_file",
                              path=str(p))
        return cls._from_data(data)

    def validate(self, linear_modules: Iterable[str] | None = None) -> "StudioConfig":
        """Check every setting (and the target modules against ``linear_modules`` when given). A config
        checked before and unchanged since is not checked again: the app refuses a bad setting before it
        asks the engine, and the job manager's check of the same config is then free."""
        seen = getattr(self, "_validated", None)
        snapshot = repr(self.to_dict())
        modules = None if linear_modules is None else tuple(sorted(set(linear_modules)))
        if seen is None or seen[0] != snapshot or (modules is not None and seen[1] != modules):
            from .config_checks import validate
            validate(self, modules)
            self._validated = (snapshot, modules)
        return self


def field_meta(section: str, name: str) -> dict:
    for f in dataclasses.fields(SECTIONS[section]):
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(f"{section}.{name}")


def field_help(section: str, name: str, lang: str = "en") -> str:
    """The help text of one field, for UI tooltips and CLI help ("" in Chinese when the field has none)."""
    return field_meta(section, name).get("help_zh" if lang == "zh" else "help", "")


def field_choices(section: str, name: str) -> tuple | None:
    return field_meta(section, name).get("choices")


def field_labels() -> dict[str, tuple[str, str]]:
    """``{"section.name": (English, Chinese)}``: the label of every field of every section."""
    return {f"{s}.{f.name}": f.metadata["label"] for s, c in SECTIONS.items() for f in dataclasses.fields(c)}


_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


def _coerce(section: str, f: dataclasses.Field, value: Any) -> Any:
    """Turn a YAML/UI value into the field's type, or explain why it cannot be."""
    where = f"{section}.{f.name}"
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if f.name == "target_modules":
        if isinstance(value, str):
            value = value.strip()
            if value in (ALL_LINEAR, "all_linear", "all linear"):
                return ALL_LINEAR
            if value.startswith("[") and value.endswith("]"):    # YAML's list written on the command line
                value = value[1:-1]
            return [n for v in value.split(",") if (n := v.strip().strip("'\"").strip())]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError("{key} must be 'all-linear' or a list of layer names, not {value!r}.", code="config.bad_modules",
                          key=where, value=value)
    if section == "training" and f.name == "tile_mlp":
        if (word := _on_off(value)) is None:
            raise ConfigError("{key} must be auto, on or off, not {value!r}.", code="config.bad_tile_mlp", key=where,
                              value=value)
        return word
    if f.name == "gradient_checkpointing":
        # true/false from older configs and presets mean on/off.
        if (word := _on_off(value)) is None:
            raise ConfigError("{key} must be auto, on, offload or off, not {value!r}.", code="config.bad_checkpointing",
                              key=where, value=value)
        return word
    if section == "grpo" and f.name in ("rewards", "reward_weights") and isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)      # a YAML list of names or weights: kept as the text it reads as
    if section == "training" and f.name == "gpus" and isinstance(value, str) and value.strip().lower() == "all":
        return 0
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE + ("on", "off"):
            return value.lower() in _TRUE + ("on",)
        raise ConfigError("{key} must be true or false, not {value!r}.", code="config.not_bool", key=where, value=value)
    if isinstance(default, int):
        if isinstance(value, bool):
            raise ConfigError("{key} must be a whole number, not {value!r}.", code="config.not_int", key=where, value=value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError("{key} must be a whole number, not {value!r}.", code="config.not_int", key=where, value=value)
    if isinstance(default, float):
        if isinstance(value, bool):
            raise ConfigError("{key} must be a number, not {value!r}.", code="config.not_number", key=where, value=value)
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError("{key} must be a number, not {value!r}.", code="config.not_number", key=where, value=value) from None
        if math.isnan(out) or math.isinf(out):
            raise ConfigError("{key} must be a finite number.", code="config.not_finite", key=where)
        return out
    if isinstance(default, str):
        if value is None:
            return ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError("{key} must be text, not {value!r}.", code="config.not_text", key=where, value=value)
        return value
    return value


def _on_off(value: Any) -> str | None:
    """A choice that yes/no also answer (true, 'yes', 1 = 'on'; false, 'no', 0 = 'off'), lower-cased (the choice
    itself is checked by validate()); None for what is neither a word nor a yes/no."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        word = value.strip().lower()
        return ("on" if word in _TRUE else "off") if word in _TRUE + _FALSE else word
    return None


def merge(cfg: StudioConfig, overrides: dict) -> StudioConfig:
    """A new config: ``cfg`` with the (partial, nested) ``overrides`` applied and type-checked."""
    out = dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s)) for s in SECTIONS})
    for key, value in overrides.items():
        if key == "name":
            out.name = "" if value is None else str(value)
            continue
        if key not in SECTIONS:
            raise ConfigError("Unknown config section '{section}'. Known sections: {known}.", code="config.unknown_section",
                              section=key, known=", ".join(("name", *SECTIONS)))
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError("Section '{section}' must be a mapping of settings, not {value!r}.",
                              code="config.section_not_mapping", section=key, value=value)
        section = getattr(out, key)
        fields = {f.name: f for f in dataclasses.fields(section)}
        for name, v in value.items():
            if name not in fields:
                raise ConfigError("Unknown setting '{key}'. Settings of '{section}': {known}.", code="config.unknown_setting",
                                  key=f"{key}.{name}", section=key, known=", ".join(fields))
            setattr(section, name, _coerce(key, fields[name], v))
    return out
