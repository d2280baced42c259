"""Runs: the device, training jobs, resume and extend, chat, evaluation, export."""

_OOM = ("Lower training.batch_size or data.max_length, set training.gradient_checkpointing to 'on', or set "
        "model.quantization to '4bit-nf4' (QLoRA).",
        "调小 training.batch_size 或 data.max_length，把 training.gradient_checkpointing 设为 'on'，"
        "或把 model.quantization 设为 '4bit-nf4'（QLoRA）。")
_WAIT = ("Wait for it to finish or stop it there, then try again.", "等它结束或在那里停止它，然后重试。")
_RUN = ("Choose a run folder (one with config.yaml).", "请选择运行文件夹（含 config.yaml 的那个）。")
_NEW = ("Start a new run instead.", "请改为开始一次新的运行。")
_FINISHED = ("Wait until the run has finished or is stopped, or choose another run.", "等运行结束或停止，或选择其他运行。")
_DEST = ("Delete or rename it first, or choose another destination.", "先删除或重命名它，或选择其他保存位置。")
_MERGED = ("Export the merged model instead and convert it with llama.cpp.", "改为导出合并后的模型，再用 llama.cpp 转换。")

MESSAGES: dict[str, tuple[str, str, str]] = {
    # the device and the job manager
    "device.busy": ("设备正忙。", "Try again in a moment.", "请稍后重试。"),
    "device.training": ("正在训练，设备已被占用；训练完成或停止后即可对话。", "Wait for the run to finish, or stop it.",
                        "等待训练完成，或停止训练。"),
    "device.answering": ("设备正在生成另一个回答；请稍后重试。", "Try again in a moment.", "请稍后重试。"),
    "device.other_process": ("设备正被 {holder} 占用，它是从另一个窗口或终端启动的。", *_WAIT),
    "job.busy": ("已有一个训练正在进行：{name}。", "Stop it or wait for it to finish before starting another.",
                 "请先停止它或等它完成，再开始新的训练。"),
    "job.other_process": ("设备正被 {holder} 占用，它是从同一工作区的另一个窗口或终端启动的。", *_WAIT),
    "config.output_path": ("输出文件夹 '{value}'（training.output_dir）是一个路径。在工作室应用中，运行文件夹是工作室 runs 文件夹"
                           "（{runs}）中的一个名称，例如 'support-bot-v2'；留空则新建一个带日期的文件夹。"
                           "（`studio train` 接受任意文件夹。）",
                           "Give a name without '/' or '..', or leave training.output_dir empty.",
                           "填写不含 '/' 或 '..' 的名称，或让 training.output_dir 留空。"),
    "config.output_exists": ("输出文件夹 {path}（training.output_dir）已存在且不为空。",
                             "Choose a new folder, or delete the old run first.", "换一个新文件夹，或先删除旧的运行。"),
    "config.output_unwritable": ("无法创建运行文件夹 {path}：{detail}。",
                                 "Check the folder's permissions and free space, or choose another training.output_dir.",
                                 "检查文件夹权限和剩余空间，或换一个 training.output_dir。"),
    # a failed run
    "training.process_killed": ("{who_zh}被 {signal} 终止：系统可能内存不足，或它被工作室之外的程序结束。运行已停止。",
                                "If the system ran out of memory, lower training.batch_size or data.max_length, or "
                                "set model.quantization to '4bit-nf4'. The output of every process is in {log}.",
                                "如果是系统内存不足，请调小 training.batch_size 或 data.max_length，或把 "
                                "model.quantization 设为 '4bit-nf4'。每个进程的输出都在 {log} 中。"),
    "training.rank_failed": ("{who_zh}失败：{detail}", "The output of every process is in {log}.",
                             "每个进程的输出都在 {log} 中。"),
    "training.rank_oom": ("{who_zh}失败：{detail}",
                          "A GPU ran out of memory. Lower training.batch_size or data.max_length, set "
                          "model.quantization to '4bit-nf4', or training.strategy to 'fsdp', which splits the "
                          "model's weights across the GPUs.",
                          "有一块 GPU 显存不足。请调小 training.batch_size 或 data.max_length，把 model.quantization "
                          "设为 '4bit-nf4'，或把 training.strategy 设为 'fsdp'（把模型权重分到多块 GPU 上）。"),
    "training.rank_nccl": ("{who_zh}失败：{detail}",
                           "The GPUs could not talk to each other (NCCL). Check that every GPU works on its own "
                           "(one GPU at a time), and that no other program is using them.",
                           "GPU 之间无法通信（NCCL）。请逐块单独检查每块 GPU 是否正常，并确认没有其他程序在使用它们。"),
    "training.failed": ("训练失败：{detail}", "This looks like a bug or an unusual setting. The full error is in {log}.",
                        "这看起来是程序缺陷或不常见的设置。完整错误见 {log}。"),
    "training.oom_gpu": ("训练时 GPU 内存不足。", *_OOM),
    "training.oom_cpu": ("训练时电脑内存不足。", *_OOM),
    "training.disk_full": ("磁盘已满，无法保存这次运行。",
                           "Free some disk space or choose an output folder on another disk, then start again.",
                           "释放一些磁盘空间，或选择另一块磁盘上的输出文件夹，然后重新开始。"),
    "training.data": ("训练数据有问题：{cause}", "Fix the data file (or pick another) and start again.",
                      "修正数据文件（或换一个）后重新开始。"),
    "training.file": ("无法读取或写入文件：{detail}",
                      "Check the folder's permissions and free space. The full error is in {log}.",
                      "检查文件夹权限和剩余空间。完整错误见 {log}。"),
    # resume and extend
    "run.not_a_run": ("{path} 不是运行文件夹（没有 config.yaml）。", *_RUN),
    "resume": ("", *_NEW),
    "resume.finished": ("运行 {name} 已完成全部步数；没有可以继续的部分。",
                        "Extend it to train further: `studio train --extend RUN_DIR training.max_steps=N`.",
                        "要继续训练，请使用扩展：`studio train --extend 运行文件夹 training.max_steps=N`。"),
    "resume.no_fingerprint": ("运行 {name} 没有 {file}（它创建于运行开始记录数据和设置之前），因此无法检查能否继续。", *_NEW),
    "resume.settings_changed": ("{name} 的设置在开始后被修改过，因此无法继续：{changes}。",
                                "Put them back, or start a new run with the new settings.",
                                "把设置改回去，或用新设置开始一次新的运行。"),
    "resume.running": ("运行 {name} 仍在训练（进程 {pid}）；只有停止后才能继续。没有改动任何文件。",
                       "Wait for it to finish, or stop it where it was started (Ctrl-C in its terminal, Stop in the app).",
                       "等它完成，或在启动它的地方停止它（在其终端按 Ctrl-C，或在应用中点停止）。"),
    "resume.no_checkpoint": ("运行 {name} 没有可以继续的完整检查点{notes}。",
                             "Start it again; it will save checkpoints as it goes.", "重新开始它；训练过程中会保存检查点。"),
    "resume.data_changed": ("{name} 的训练数据（{file}）与运行开始时不同（{counts}；处理后的文本或 token 不同）。"
                            "继续训练会在其他数据上进行。",
                            "Restore the original file, or start a new run on the new data.",
                            "恢复原来的文件，或用新数据开始一次新的运行。"),
    "resume.no_settings": ("--resume 会完全按原来的设置继续运行；它不接受其他设置。",
                           "To train longer than planned, let it finish and use --extend.",
                           "如果要比计划训练更久，请等它完成后使用 --extend。"),
    "extend.no_adapter_file": ("{path} 中没有可以作为起点的适配器。", *_RUN),
    "extend.adapter_mismatch": ("{path} 中的适配器与该模型的 LoRA 层不匹配（例如 {example}）。",
                                "Extend with the run's own LoRA settings.", "请使用该运行自己的 LoRA 设置进行扩展。"),
    "extend.no_adapter": ("运行 {name} 没有已保存的适配器，无法扩展。", "Resume it instead, or start a new run.",
                          "请改为继续它，或开始一次新的运行。"),
    "extend.no_length": ("请说明还要训练多久：步数（training.max_steps）或轮数（training.epochs）。",
                         "Give training.max_steps or training.epochs.", "请设置 training.max_steps 或 training.epochs。"),
    # chat
    "chat": ("", *_FINISHED),
    "chat.empty_prompt_cli": ("提问为空；请在 --prompt 后写一个问题。", "Write a question after --prompt.",
                              "在 --prompt 后写一个问题。"),
    "chat.empty_prompt": ("请先输入一条消息。", "Type a message, then send it.", "输入一条消息后再发送。"),
    "chat.no_template": ("该模型没有对话模板，无法格式化对话。", "Choose a run whose model has a chat template.",
                         "选择一个模型带有对话模板的运行。"),
    "chat.no_run": ("{path} 处没有运行文件夹。", *_RUN),
    "chat.no_adapter": ("{path} 中的运行还没有适配器（状态为 '{state}'）。", *_FINISHED),
    "chat.bad_config": ("无法读取该运行的 config.yaml：{cause}", "Fix or restore the run's config.yaml.",
                        "修正或恢复该运行的 config.yaml。"),
    "chat.still_training": ("该运行仍在训练；训练完成或停止后即可对话。", *_FINISHED),
    "chat.no_base": ("该模型没有适配器，因此没有可对比的基础模型。", "Chat with the tuned model alone.", "请只与微调后的模型对话。"),
    "chat.oom": ("生成回答时内存不足。",
                 "Lower generation.max_new_tokens or free the GPU (stop other programs).",
                 "调小 generation.max_new_tokens，或释放 GPU（关闭其他程序）。"),
    "chat.failed": ("模型无法回答：{detail}", "Try again; change the generation settings if it happens again.",
                    "请重试；如果再次出现，请修改生成设置。"),
    "chat.bad_tokenizer": ("无法读取与适配器一起保存的分词器：{detail}", "Train the run again, or choose another run.",
                           "重新训练该运行，或选择其他运行。"),
    "chat.adapter_mismatch": ("{path} 中的适配器与基础模型 '{base}' 不匹配：{detail}",
                              "Check that the run's model.source is the model it was trained on.",
                              "检查该运行的 model.source 是否就是训练时所用的模型。"),
    # evaluation
    "eval": ("", "Choose other runs or another prompts file.", "请选择其他运行或其他提示文件。"),
    "eval.no_file": ("提示文件 {path} 不存在。", "Check the path of the prompts file.", "检查提示文件的路径。"),
    "eval.unreadable": ("提示文件 {path} 无法作为 UTF-8 文本读取：{detail}", "Save it as UTF-8 text, then try again.",
                        "把它另存为 UTF-8 文本后重试。"),
    "eval.bad_json": ('{path} 的第 {line} 行不是有效的 JSON；每行必须是一个对象，例如 '
                      '{{"prompt": "...", "reference": "..."}}。', "Fix that line, then try again.", "修正该行后重试。"),
    "eval.no_prompt": ("{path} 的第 {row} 行没有提示（需要 'prompt' 或 'question' 列）。",
                       "Add a 'prompt' column (and optionally 'reference').", "添加 'prompt' 列（可选 'reference' 列）。"),
    "eval.empty": ("提示文件 {path} 中没有提示。", "Add prompts to the file, one per line or row.", "在文件中添加提示，每行一个。"),
    "eval.no_runs": ("请至少选择一个要评估的运行。", "Choose one or more runs.", "选择一个或多个运行。"),
    "eval.same_name": ("所选运行中有两个文件夹名称相同；每个运行请只选一次。", "Choose each run once.", "每个运行只选一次。"),
    "eval.mixed_bases": ("所选运行基于不同的基础模型（{models}）；一次评估只对比同一个基础模型的运行。",
                         "Choose runs of the same model.", "请选择同一个模型的运行。"),
    "eval.no_adapter": ("运行 {name} 还没有适配器；完成或停止后才能评估。", *_FINISHED),
    "eval.nothing_to_save": ("还没有可以保存的回答。", "Run the evaluation first.", "请先运行评估。"),
    # export
    "export": ("", "Check the run and the destination, then export again.", "检查运行和保存位置后重新导出。"),
    "export.no_adapter": ("运行 {name} 还没有已保存的适配器；完成或停止后才能导出。", *_FINISHED),
    "export.unknown_dtype": ("未知的数据类型 '{name}'；请从以下选择：{choices}。", "Pick one of those.", "从中选择一个。"),
    "export.exists": ("{path} 已存在；导出永远不会覆盖之前的文件。", *_DEST),
    "export.no_space": ("磁盘空间不足，无法保存 {what}：大约需要 {needed:.2f} GB，而 {folder} 只剩 {free:.2f} GB。",
                        "Free some space or export to another disk.", "释放一些空间，或导出到另一块磁盘。"),
    "export.gguf_tokenizer": ("GGUF 导出支持 BPE 分词器：字节级（Llama 3、SmolLM、Qwen）或 SentencePiece 风格（Llama 2、Mistral）；"
                              "该模型的分词器是 {kind}。",
                              "Export the merged model instead.", "请改为导出合并后的模型。"),
    "export.gguf_family": ("GGUF 导出只支持 Llama 系列模型（Llama、SmolLM、Mistral）；该运行的基础模型是 '{kind}'。", *_MERGED),
    "export.unknown_gguf_type": ("未知的 GGUF 类型 '{kind}'；请从以下选择：{choices}。",
                                 "Pick one of those (Q4_K_M is the usual choice). For other types (IQ2_XXS, Q3_K_M...) "
                                 "export f16, then run llama.cpp's llama-quantize on the file.",
                                 "从中选择一个（通常选 Q4_K_M）。要得到其他类型（IQ2_XXS、Q3_K_M……），先导出 f16，"
                                 "再用 llama.cpp 的 llama-quantize 转换该文件。"),
    "export.unknown_lora_type": ("未知的 GGUF 适配器类型 '{kind}'；请从以下选择：{choices}。",
                                 "F16 is the usual choice.", "通常选 F16。"),
    "export.lora_not_lora": ("该运行的适配器是 {kind} 适配器；llama.cpp 的适配器文件只能保存 LoRA。", *_MERGED),
    "export.lora_dora": ("该运行的适配器使用了 DoRA；llama.cpp 的适配器文件无法保存 DoRA 的幅度向量。", *_MERGED),
    "export.lora_full_modules": ("该运行的适配器训练了 {modules} 的完整副本（modules_to_save）；llama.cpp 的适配器文件"
                                 "只能保存低秩变化。", *_MERGED),
    "export.lora_bias": ("该运行的适配器训练了偏置（bias '{bias}'）；llama.cpp 的适配器文件不保存偏置。", *_MERGED),
    "export.lora_tensor": ("适配器包含 {tensor}，llama.cpp 的适配器文件无法保存它（只支持线性层上的 LoRA，"
                           "不支持嵌入层或输出层）。", *_MERGED),
    "export.lora_empty": ("该运行的适配器不含任何 LoRA 层。", "Check the run's lora.target_modules and train again.",
                          "检查该运行的 lora.target_modules 后重新训练。"),
    "export.check_no_base": ("{path} 是 LoRA 适配器；它的基础模型 GGUF（{modelfile} 中 FROM 指定的文件）不在它旁边。",
                             "Export the adapter again (it writes the base beside it), or put the base file back.",
                             "重新导出适配器（会在旁边写出基础模型），或把基础模型文件放回去。"),
    "export.no_llama_cpp": ("这种导出需要 llama.cpp 的 Python 包（llama-cpp-python），但它没有安装。安装命令：{install}",
                            "Run that command in the terminal where you start the studio (it builds llama.cpp, a few "
                            "minutes), then export again. f16 and Q8_0 exports work without it.",
                            "在启动工作室的终端里运行该命令（它会编译 llama.cpp，需要几分钟），然后重新导出。"
                            "f16 和 Q8_0 导出不需要它。"),
    "export.llama_cpp_broken": ("llama-cpp-python 已安装，但它的 llama.cpp 库无法加载：{detail}",
                                "Reinstall it: pip install --force-reinstall --no-cache-dir llama-cpp-python",
                                "重新安装：pip install --force-reinstall --no-cache-dir llama-cpp-python"),
    "export.llama_cpp_type": ("已安装的 llama-cpp-python 不认识类型 {kind}。",
                              "Update it (pip install -U llama-cpp-python) or choose another type.",
                              "更新它（pip install -U llama-cpp-python），或选择其他类型。"),
    "export.check_no_file": ("{path} 处没有 GGUF 文件。", "Export the run as GGUF first, or give the path of the .gguf file.",
                             "请先把运行导出为 GGUF，或给出 .gguf 文件的路径。"),
    "export.check_no_template": ("GGUF 文件 {path} 中没有对话模板，因此 llama.cpp 无法格式化对话。",
                                 "Export it again with the studio: its exports carry the template trained with.",
                                 "请用工作室重新导出：它的导出会带上训练时使用的模板。"),
    "export.quantize_failed": ("llama.cpp 无法把文件量化为 {kind}（错误 {result}）。",
                               "Export f16 or Q8_0 instead; the terminal shows llama.cpp's own message.",
                               "请改为导出 f16 或 Q8_0；终端里有 llama.cpp 自己的消息。"),
    "export.gguf_tensor": ("张量 {tensor} 没有对应的 GGUF 名称；该模型无法导出为 GGUF。", *_MERGED),
    "export.unknown_kind": ("未知的导出类型 '{kind}'；请从以下选择：{choices}。", "Pick one of those.", "从中选择一个。"),
    "export.no_token": ("没有设置 Hugging Face 令牌，无法推送。",
                        "Create a token with write access at https://huggingface.co/settings/tokens and pass it with "
                        "--token, set HF_TOKEN, or run `hf auth login` once.",
                        "在 https://huggingface.co/settings/tokens 创建有写权限的令牌，用 --token 传入、设置 HF_TOKEN，"
                        "或运行一次 `hf auth login`。"),
    "export.push_kind": ("只有适配器或合并后的模型可以推送到 Hub。", "Push the adapter or the merged model.",
                         "请推送适配器或合并后的模型。"),
    "export.bad_repo": ("'{repo}' 不是 Hub 仓库名；请使用 你的名字/模型名 的形式。", "Use the form your-name/model-name.",
                        "使用 你的名字/模型名 的形式。"),
    "export.offline": ("这台电脑设置为离线工作（HF_HUB_OFFLINE=1），无法推送。",
                       "Unset HF_HUB_OFFLINE when you are online, then push again.", "联网后取消 HF_HUB_OFFLINE，再重新推送。"),
    "export.token_refused": ("Hub 拒绝了用于 {repo} 的令牌（{detail}）。", "Use a token with write access to that namespace.",
                             "请使用对该命名空间有写权限的令牌。"),
    "export.unreachable": ("无法连接 Hugging Face Hub（没有网络？）。没有推送任何内容。", "Try again online.", "联网后重试。"),
    "export.push_failed": ("推送到 {repo} 失败：{detail}。", "Check the repository name and your token, then try again.",
                           "检查仓库名和令牌后重试。"),
}
MESSAGES["extend.settings"] = ("--extend 会沿用该运行自己的设置；只能指定训练多久（training.max_steps、training.epochs）、"
                               "training.output_dir 和 name。",
                               "Leave out the other settings, or start a new run with them.", "去掉其他设置，或用它们开始一次新的运行。")
