"""Training data (``studio/data/``)."""

_FIX = ("Fix the data file (or choose another one), then check it again.", "修正数据文件（或换一个），然后重新检查。")
_UTF8 = ("Open it in a text editor and save it as 'UTF-8' (in Excel: File > Save As > 'CSV UTF-8'), then load it "
         "again.", "用文本编辑器打开并另存为 'UTF-8'（Excel 中：文件 > 另存为 > 'CSV UTF-8'），然后重新加载。")
_OTHER = ("Choose another data file, 'demo', or a Hub dataset id.", "请选择其他数据文件、'demo' 或 Hub 数据集 ID。")

MESSAGES: dict[str, tuple[str, str, str]] = {
    "data": ("", *_FIX),
    "data.validation_too_many": ("data.validation 要求 {asked} 行验证数据，但数据只有 {rows} 行可用；至少要留一行用于训练。",
                                 "Give data.validation as a share (0.1 holds back a tenth) or a count smaller than the "
                                 "number of rows, or 0 for none.",
                                 "把 data.validation 设为比例（0.1 表示留出十分之一）、小于行数的行数，或 0（不留）。"),
    "data.trailing_comma": ("{name} 不是有效的 JSON：第 {line} 行第 {column} 列的逗号紧挨在结尾的 '{closing}' 之前，"
                            "而 JSON 不允许在最后一项之后再写逗号。",
                            "Delete that comma and load the file again.", "删除该逗号，然后重新加载文件。"),
    "data.repeated_column": ("{name} 的表头中有列名出现了不止一次：{columns}。每一列都需要自己的名称，否则其中一列会丢失。",
                             "Rename one of the columns in the first line (the header), then load the file again.",
                             "在第一行（表头）中给其中一列改名，然后重新加载文件。"),
    "data.no_chatterbot": ("未安装 chatterbot 语料库。", "Install it with: pip install chatterbot-corpus",
                           "用以下命令安装：pip install chatterbot-corpus"),
    "data.chatterbot_incomplete": ("chatterbot 语料库已安装，但没有英文数据文件夹（{folder}）。",
                                   "Reinstall it: pip install --force-reinstall chatterbot-corpus",
                                   "重新安装：pip install --force-reinstall chatterbot-corpus"),
    "data.unknown_encoding": ("'{encoding}' 不是工作室认识的文本编码；请选择 'auto' 或其他编码。",
                              "Set data.encoding to 'auto', or to a name such as utf-8, cp1252 or gb18030.",
                              "把 data.encoding 设为 'auto'，或 utf-8、cp1252、gb18030 等编码名。"),
    "data.wrong_encoding": ("{name} 不能按 {encoding} 读取：第 {line} 行含有不是 {encoding} 文本的字节。"
                            "请选择 'auto' 或其他编码。",
                            "Set data.encoding to 'auto' or to the encoding the file was saved in.",
                            "把 data.encoding 设为 'auto' 或文件保存时所用的编码。"),
    "data.binary": ("{name} 不是文本文件（含有零字节，二进制文件才会这样）。如果是电子表格，请另存为 CSV；"
                    "否则请另存为 UTF-8 文本。", *_UTF8),
    "data.not_utf8": ("{name} 不是 UTF-8 文本（第一个无法读取的字符在第 {line} 行），也无法识别其编码。", *_UTF8),
    "data.undecodable": ("{name} 看起来是 {encoding} 文本，但无法按此编码读取。", *_UTF8),
    "data.mapping_columns": ("data.format 为 'mapping' 时，请选择提问所在的列（data.prompt_column）和回答所在的列"
                             "（data.answer_column）。", "Pick the two columns, or set data.format to 'auto'.",
                             "选择这两列，或把 data.format 设为 'auto'。"),
    "data.missing_columns": ("数据中没有这些列：{missing}。数据的列有：{columns}。",
                             "Choose columns the data has (data.prompt_column, data.answer_column).",
                             "选择数据中存在的列（data.prompt_column、data.answer_column）。"),
    "data.not_preference": ("这份数据中没有偏好对（它的列：{columns}）。DPO、ORPO 和 SimPO 需要每行都有 'chosen' 和 "
                            "'rejected' 两个回答，问题写在 'prompt'（文本或消息列表）、'conversations'（sharegpt）中，"
                            "或包含在两个回答里（完整对话）。",
                            "Choose a preference file (the built-in one is 'demo-preference'), or train this file with "
                            "training.method 'sft'.",
                            "选择一个偏好数据文件（内置的是 'demo-preference'），或用 training.method 'sft' 训练这份文件。"),
    "data.not_labelled": ("这份数据中没有带标签的回答（它的列：{columns}）。KTO 需要每行都有 'prompt'、'completion' 和 "
                          "'label'（true 或 false），或者一个每行都有 'chosen' 和 'rejected' 的偏好文件。",
                          "Add a true/false 'label' to each answer, choose a preference file, or train this file with "
                          "training.method 'sft'.",
                          "为每个回答加上 true/false 的 'label'，或选择偏好数据文件，或用 training.method 'sft' 训练。"),
    "data.no_examples": ("没有可用的训练行：数据中没有样本。", *_FIX),
    "data.all_rows_bad": ("没有可用的训练行：每一行都有问题。{shown}{more}。",
                          "Fix the rows named above (or choose another file); `studio data FILE` lists every problem.",
                          "修正上面列出的行（或换一个文件）；`studio data 文件` 会列出所有问题。"),
    "data.none_chosen": ("未选择数据：请提供文件、'demo' 或 Hugging Face 数据集 ID。", *_OTHER),
    "data.no_demo": ("内置演示数据缺失（{path}）；请重新安装工作室或选择一个文件。",
                     "Reinstall the studio, or choose a data file.", "重新安装工作室，或选择一个数据文件。"),
    "data.is_folder": ("'{source}' 是文件夹；请选择其中的数据文件（.jsonl、.json、.csv、.tsv 或 .parquet）。",
                       "Choose a file inside the folder.", "选择文件夹里的一个文件。"),
    "data.not_found": ("找不到文件：{source}。", "Check the name and folder, or upload the file again.",
                       "检查文件名和文件夹，或重新上传文件。"),
    "data.too_big": ("{name} 有 {size_mb:.0f} MB，超过了 {limit_mb:.0f} MB 的上限。",
                     "Use a smaller part of the data (for example the first rows).", "使用数据的一小部分（例如前面若干行）。"),
    "data.empty_file": ("{name} 是空文件。", "Choose a file that holds training examples.", "请选择包含训练样本的文件。"),
    "data.blank_file": ("{name} 是空文件（只有空白字符）。", "Choose a file that holds training examples.",
                        "请选择包含训练样本的文件。"),
    "data.no_rows": ("{name} 中没有任何行。", "Choose a file that holds training examples.", "请选择包含训练样本的文件。"),
    "data.spreadsheet": ("{name} 是电子表格文件，无法直接读取。",
                         "In your spreadsheet program choose File > Save As (or Download) > 'CSV UTF-8', then load "
                         "the .csv file.", "在电子表格程序中选择 文件 > 另存为（或下载）> 'CSV UTF-8'，然后加载该 .csv 文件。"),
    "data.unreadable": ("无法读取 {name}：{detail}。", "Check that the file exists and that you may read it.",
                        "检查文件是否存在、你是否有读取权限。"),
    "data.unknown_kind": ("无法判断 {name} 是什么类型的文件。请使用 .jsonl、.json、.csv、.tsv 或 .parquet 文件。",
                          "Save the data with one of those extensions.", "用上述扩展名之一保存数据。"),
    "data.bad_json": ("{name} 不是有效的 JSON：第 {line} 行第 {column} 列，{detail}。",
                      "Fix that spot (often a missing comma or quote) or save the data as JSON Lines.",
                      "修正该处（通常是缺少逗号或引号），或把数据另存为 JSON Lines。"),
    "data.not_a_list": ("{name} 必须包含样本列表（[{{...}}, {{...}}]），而不是单个值。", *_FIX),
    "data.empty_list": ("{name} 是空列表：里面没有样本。", *_FIX),
    "data.no_train_split": ("{name} 包含多个样本列表：{keys}，但没有名为 'train' 的列表。",
                            "Save the one to train on as its own file (or rename it to 'train'), then load it again.",
                            "把要训练的那个列表单独保存为文件（或改名为 'train'），然后重新加载。"),
    "data.bad_csv": ("{name} 不是可读取的 {kind} 文件（第 {line} 行：{detail}）。",
                     "Open it in a spreadsheet program and save it again as CSV UTF-8.",
                     "用电子表格程序打开，重新另存为 CSV UTF-8。"),
    "data.no_header": ("{name} 没有表头行。第一行必须是列名，例如 question,answer。",
                       "Add a first line that names the columns.", "在第一行加上列名。"),
    "data.header_only": ("{name} 只有表头，没有数据行。", *_FIX),
    "data.bad_parquet": ("{name} 不是可读取的 Parquet 文件（{detail}）。",
                         "Export the data again, or save it as .jsonl or .csv.", "重新导出数据，或另存为 .jsonl 或 .csv。"),
    "data.hub_offline": ("这台电脑处于离线状态，无法从 Hugging Face Hub 获取数据集 '{dataset}'。",
                         "Download the data file on a computer with internet (the 'Files' tab of the dataset page), "
                         "then upload the file here instead.",
                         "在能上网的电脑上下载数据文件（数据集页面的 'Files' 标签页），然后在这里上传该文件。"),
    "data.hub_not_found": ("在 Hugging Face Hub 上找不到数据集 '{dataset}'（或它是私有的）。",
                           "Check the spelling (owner/name) or upload a file instead.", "检查拼写（所有者/名称），或改为上传文件。"),
    "data.hub_failed": ("无法加载数据集 '{dataset}'：{detail}", "Check the dataset id and the connection, or upload a file.",
                        "检查数据集 ID 和网络连接，或改为上传文件。"),
    "data.no_model_template": ("该模型没有自带的对话模板。",
                               "Set data.template to 'auto' (uses chatml), or one of: chatml, alpaca, human_assistant.",
                               "把 data.template 设为 'auto'（使用 chatml），或 chatml、alpaca、human_assistant 之一。"),
    "data.unknown_template": ("未知的模板 '{template}'。请从以下选择：{choices}。", "Change data.template.",
                              "修改 data.template。"),
    "data.template_refused": ("对话模板拒绝了这段对话：{detail}",
                              "Fix the row, or set data.template to another template.", "修正该行，或把 data.template 换成其他模板。"),
}
MESSAGES["data.shape_guess"] = (
    "无法识别数据的结构（列：{columns}）。看起来 '{prompt}' 是提问、'{answer}' 是回答。",
    "Set data.format to 'mapping' with those columns (data.prompt_column, data.answer_column).",
    "把 data.format 设为 'mapping'，并选择这两列（data.prompt_column、data.answer_column）。")
MESSAGES["data.unknown_shape"] = (
    "无法识别数据的结构（列：{columns}）。",
    "Set data.format to 'mapping' and say which column holds the prompt (data.prompt_column) and which the answer "
    "(data.answer_column).",
    "把 data.format 设为 'mapping'，并指定哪一列是提问（data.prompt_column）、哪一列是回答（data.answer_column）。")
MESSAGES["data.upload_kind"] = ("'{name}' 不是工作室能读取的数据文件。请使用：{kinds}。",
                                "Save the data in one of those formats, then upload it again.", "把数据另存为上述格式之一，然后重新上传。")
