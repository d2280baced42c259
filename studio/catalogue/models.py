"""Base models: finding, downloading, converting and loading them (``studio/models/``: ``sources.py``,
``load.py``, ``weights_check.py``)."""

_SOURCE = ("Check model.source (a name, folder or file) and try again.", "检查 model.source（名称、文件夹或文件）后重试。")
_OFFLINE = ("Use 'default' (the built-in model works offline), or download the model on a computer with internet and "
            "choose its folder (the one with config.json) as model.source.",
            "使用 'default'（内置模型可离线使用），或在能上网的电脑上下载该模型，再把它的文件夹（含 config.json 的那个）"
            "设为 model.source。")
_FOLDER = ("Choose the folder that contains config.json and the weights (.safetensors or .bin).",
           "选择包含 config.json 和权重文件（.safetensors 或 .bin）的文件夹。")
_DOWNLOAD = ("Download the model again, then try again.", "重新下载该模型后再试。")

MESSAGES: dict[str, tuple[str, str, str]] = {
    "model": ("", *_SOURCE),
    "model.oom_quantize": ("内存不足，无法加载 {name}。",
                           "Set model.quantization to '4bit-nf4' (QLoRA), which needs about a quarter of the memory, "
                           "or choose a smaller model.",
                           "把 model.quantization 设为 '4bit-nf4'（QLoRA，约需四分之一的内存），或选择更小的模型。"),
    "model.oom": ("内存不足，无法加载 {name}。", "Choose a smaller model, or close other programs using the GPU.",
                  "选择更小的模型，或关闭其他占用 GPU 的程序。"),
    "model.remote_code": ("{name} 需要运行模型自带的 Python 代码。只有在信任作者时才把 model.trust_remote_code 设为 true。",
                          "Set model.trust_remote_code to true if you trust the authors, or choose another model.",
                          "如果信任作者，把 model.trust_remote_code 设为 true；否则请选择其他模型。"),
    "model.no_bitsandbytes": ("量化加载需要 bitsandbytes 包（{detail}）。",
                              "Install it with `pip install bitsandbytes`, or set model.quantization to 'none'.",
                              "用 `pip install bitsandbytes` 安装，或把 model.quantization 设为 'none'。"),
    "model.load_failed": ("无法加载 {name}：{detail}", *_SOURCE),
    "model.no_pad_token": ("{name} 的分词器没有可用于填充的结束、未知或起始 token，无法组成批次。", "Choose another model.",
                           "请选择其他模型。"),
    "model.tokenizer_mismatch": ("第 {row} 行含有 token id {token}，但 {name} 只有 {size} 个 token 嵌入：分词器与该模型不匹配。",
                                 "Use the tokenizer saved with this model (the tokenizer files beside its config.json), "
                                 "or choose the model this tokenizer belongs to.",
                                 "使用随该模型保存的分词器（config.json 旁边的分词器文件），或选择与该分词器配套的模型。"),
    "model.no_linear": ("该模型没有 LoRA 可以适配的线性层。", "Choose another model.", "请选择其他模型。"),
    "config.lora_refused": ("无法用这些设置应用 LoRA：{detail}",
                            "Change the LoRA settings (lora.target_modules, lora.use_dora, lora.bias) and start again.",
                            "修改 LoRA 设置（lora.target_modules、lora.use_dora、lora.bias）后重新开始。"),
    "model.no_builtin": ("内置模型未安装。", "Install it with:  {command}", "用以下命令安装：  {command}"),
    "model.no_gguf_package": ("读取 .gguf 文件需要 'gguf' 包。", "Install it with:  pip install gguf",
                              "用以下命令安装：  pip install gguf"),
    "model.bad_gguf": ("无法读取 GGUF 文件 {path}：{detail}。",
                       "Only GGUF files of model types that transformers can dequantize are supported (Llama, Mistral, "
                       "Qwen2, Phi-3, Gemma, ...). Choose another file or the model's Hub id.",
                       "只支持 transformers 能反量化的模型类型的 GGUF 文件（Llama、Mistral、Qwen2、Phi-3、Gemma 等）。"
                       "请换一个文件或使用该模型的 Hub ID。"),
    "model.gguf_convert": ("GGUF 模型转换失败：缺少权重 {missing}，多余权重 {unexpected}。",
                           "Choose the model's Hub id or folder instead of the .gguf file.", "改用该模型的 Hub ID 或文件夹。"),
    "model.write_failed": ("无法把转换后的模型写入 {path}：{detail}。",
                           "Check free disk space, or set STUDIO_CACHE to a folder with room.",
                           "检查磁盘剩余空间，或把 STUDIO_CACHE 设为有空间的文件夹。"),
    "model.is_adapter": ("{folder} 里是 LoRA 适配器，不是基础模型。请把它的基础模型{base}设为来源；适配器会加载在基础模型之上。",
                         "Set model.source to the base model.", "把 model.source 设为基础模型。"),
    "model.folder_has_gguf": ("文件夹 {folder} 不是 Hugging Face 模型文件夹：没有 config.json。它包含 .gguf 文件："
                              "请选择其中一个，例如 {example}。", "Set model.source to the .gguf file.",
                              "把 model.source 设为该 .gguf 文件。"),
    "model.no_config": ("文件夹 {folder} 不是 Hugging Face 模型文件夹：没有 config.json。", *_FOLDER),
    "model.bad_config": ("无法读取 {path}（{detail}）。下载可能不完整。", *_DOWNLOAD),
    "model.no_weights": ("文件夹 {folder} 有 config.json 但没有权重文件（没有 .safetensors 或 .bin）。下载可能不完整。",
                         *_DOWNLOAD),
    "model.offline_mode": ("无法下载 '{repo}'：这台电脑设置为离线工作（HF_HUB_OFFLINE=1），且下载缓存中没有该模型。", *_OFFLINE),
    "model.offline": ("无法下载 '{repo}'：这台电脑连不上 Hugging Face Hub（{detail}）。", *_OFFLINE),
    "model.hub_not_found": ("Hugging Face Hub 上没有模型 '{repo}'（请检查拼写），或者它是私有的。",
                            "Check the spelling (owner/name); for a private model log in with `hf auth login` first.",
                            "检查拼写（所有者/名称）；私有模型请先用 `hf auth login` 登录。"),
    "model.hub_refused": ("Hugging Face Hub 拒绝了 '{repo}'：{detail}", "Check the model id and your login, then try again.",
                          "检查模型 ID 和登录状态后重试。"),
    "model.download_failed": ("下载 '{repo}' 失败：{detail}",
                              "Check the connection and free disk space, then try again (finished files are kept).",
                              "检查网络连接和磁盘空间后重试（已下载完的文件会保留）。"),
    "model.gated": ("'{repo}' 是受限模型：请登录后在 https://huggingface.co/{repo} 接受它的许可协议。",
                    "Then log in here with `hf auth login` (or set HF_TOKEN) and try again.",
                    "然后在这里用 `hf auth login` 登录（或设置 HF_TOKEN）并重试。"),
    "model.is_file": ("{path} 是文件，不是模型。请选择模型文件夹（含 config.json）、.gguf 文件、Hub 模型 ID 或 'default'。",
                      *_SOURCE),
    "model.not_found": ("找不到模型：'{source}' 不是这台电脑上的文件夹或文件，也不是 所有者/名称 形式的 Hub 模型 ID。",
                        *_SOURCE),
    "model.damaged_adapter": ("运行 {run} 的适配器已损坏或不完整：{files}。基础模型没有受到影响。",
                              "Train the run again (or resume it from a checkpoint); if the run folder was copied, "
                              "copy it again.", "重新训练该运行（或从检查点继续）；如果运行文件夹是复制来的，请重新复制。"),
    "model.damaged": ("模型文件已损坏或不完整：{files}。",
                      "Download or copy the model again (the copy was probably interrupted).",
                      "重新下载或复制该模型（上次复制可能被中断了）。"),
    "model.damaged_file": ("{folder} 中的一个模型权重文件已损坏或不完整（{detail}）。",
                           "Download or copy the model again (the copy was probably interrupted).",
                           "重新下载或复制该模型（上次复制可能被中断了）。"),
    "model.damaged_file_builtin": ("{folder} 中的一个模型权重文件已损坏或不完整（{detail}）。",
                                   "Delete the folder {folder}; the built-in model is converted again the next time "
                                   "it is used.", "删除文件夹 {folder}；下次使用时会重新转换内置模型。"),
    "model.damaged_builtin": ("内置模型的文件已损坏或不完整：{files}。",
                              "Delete the folder {folder}; the built-in model is converted again the next time it is used.",
                              "删除文件夹 {folder}；下次使用时会重新转换内置模型。"),
}
