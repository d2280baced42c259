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


from .errors import ConfigError


def _f(default: Any, help: str, choices: tuple | None = None, *, limits: tuple | None = None, typical: str = "",
       zh: str = "", label: tuple[str, str], **kw):
    """A config field and what every interface shows of it: ``help`` (English), ``choices``, ``limits``
    (low, high; None = open; validate() refuses values outside, saying the ``typical`` values when given:
    numbers, the same in every language), its Chinese help ``zh`` and its ``label`` (English, Chinese).
    The app and ``studio train --help`` read them from here; ``label`` is required so that no field's
    name on the screen has to live anywhere else."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if limits is not None:
        meta["limits"] = limits
    if typical:
        meta["typical"] = typical
    if zh:
        meta["help_zh"] = zh
    meta["label"] = label
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


QUANTIZATIONS = ("none", "8bit", "4bit-nf4", "4bit-fp4")
ALL_LINEAR = "all-linear"     # lora.target_modules: every linear layer but the output head (PEFT's own word)
COMPUTE_DTYPES = ("auto", "bfloat16", "float16", "float32")
TEMPLATES = ("auto", "model", "chatml", "alpaca", "human_assistant")
FORMATS = ("auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text", "preference", "mapping")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts")
CHECKPOINTING = ("auto", "on", "off")
ATTENTIONS = ("auto", "sdpa", "flex_attention", "varlen")
STRATEGIES = ("auto", "ddp", "fsdp")
REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
OPTIMIZERS = ("adamw_torch", "paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit", "sgd", "adafactor")
# training.method: how a run learns from its rows. Each name is a module of studio/training/methods/ (the
# registry of methods: a new one adds its name here).
METHODS = ("sft",)


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


@dataclass
class TrainingConfig:
    method: str = _f("sft", "How the model learns from the rows. 'sft' (supervised fine-tuning): it learns to write each "
                     "row's answer, the loss taken on the tokens data.train_on names.", METHODS,
                     zh="模型如何从数据中学习。'sft'（监督微调）：学习写出每行的回答，损失按 data.train_on 所选的 token 计算。",
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
                                     "and checkpoints only as many layers as this GPU needs.", CHECKPOINTING,
                                     zh="重新计算激活值而不是保存它们：大幅省显存，约慢 30%。“自动”会在训练前用最长的"
                                        "一批数据测量一次，只对这块 GPU 需要的层做检查点。",
                                     label=("Gradient checkpointing", "梯度检查点"))
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
            "training": TrainingConfig, "generation": GenerationConfig}

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
    generation: GenerationConfig = field(default_factory=GenerationConfig)
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
    if f.name == "gradient_checkpointing":
        # true/false from older configs and presets mean on/off.
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return "on" if value.strip().lower() in _TRUE else "off"
        if isinstance(value, str):
            return value.strip().lower()
        raise ConfigError("{key} must be auto, on or off, not {value!r}.", code="config.bad_checkpointing", key=where,
                          value=value)
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
