"""Stops, checks before work starts, and the command-line mistakes (eval, export, chat, the workspace)."""

_CSV = ("Give the path of a .csv file in a folder you can write to.", "请给出一个你有写权限的文件夹中的 .csv 文件路径。")
_PROMPTS = ("Write the prompts as JSON Lines (one object per line) or as a CSV with a 'prompt' column.",
            "请把提示写成 JSON Lines（每行一个对象），或带 'prompt' 列的 CSV。")

_FAILED = ("Its train.log says why it failed; fix that and train it again, or choose another run.",
           "它的 train.log 说明了失败原因；修正后重新训练，或选择其他运行。")

_OUTPUT = ("Give a new path for the export in a folder you can write to, or leave it out to use the exports "
           "folder.", "请为导出给出一个你有写权限的文件夹中的新路径，或不指定以使用导出文件夹。")

_WORKSPACE = ("Choose a folder for the workspace (STUDIO_HOME), or a path where one can be made.",
              "请为工作区（STUDIO_HOME）选择一个文件夹，或一个可以创建文件夹的路径。")

MESSAGES: dict[str, tuple[str, str, str]] = {
    "eval.csv_is_folder": ("表格文件 {path} 是一个文件夹；请给出 .csv 文件的路径。", *_CSV),
    "eval.csv_no_folder": ("无法写入表格文件 {path}：文件夹 {folder} 不存在。", *_CSV),
    "eval.csv_denied": ("无法写入表格文件 {path}：没有在 {folder} 中写入的权限。", *_CSV),
    "eval.csv_write": ("无法写入表格文件 {path}：{detail}", *_CSV),
    "eval.bad_array": ("{path} 看起来是一个 JSON 数组，但不是有效的 JSON（{detail}）。", *_PROMPTS),
    "eval.not_object": ('{path} 的第 {row} 行不是对象，例如 {{"prompt": "...", "reference": "..."}}。', *_PROMPTS),
    "eval.failed_run": ("运行 {name} 在保存适配器之前就失败了，因此没有可评估的内容。",
                        "Choose a run that finished or was stopped, or train this one again.",
                        "请选择已完成或已停止的运行，或重新训练这个运行。"),
    "chat.failed_run": ("{path} 中的运行在保存适配器之前就失败了，因此没有可以对话的内容。", *_FAILED),
    "export.failed_run": ("运行 {name} 在保存适配器之前就失败了，因此没有可导出的内容。", *_FAILED),
    "export.output_is_folder": ("{path} 是一个已存在的文件夹。输出路径指的是导出内容本身（例如 {example}），"
                                "而不是存放它的文件夹。", *_OUTPUT),
    "export.output_is_file": ("{path} 是一个已存在的文件；这种导出是一个文件夹，不会替换文件。", *_OUTPUT),
    "export.output_parent_file": ("{folder} 是一个文件，因此无法在其中写入导出 {path}。", *_OUTPUT),
    "export.output_denied": ("没有在 {folder} 中写入的权限，因此无法在那里写入导出 {path}。", *_OUTPUT),
    "export.write_failed": ("无法写入 {path}：{detail}", *_OUTPUT),
    "paths.workspace_is_file": ("工作区 {path}（STUDIO_HOME）是一个文件，而不是文件夹。", *_WORKSPACE),
    "paths.workspace_unwritable": ("无法创建工作区 {path}（STUDIO_HOME）：{detail}。", *_WORKSPACE),
    "eval.prompt_too_long": ("第 {row} 个提示按模型的提问方式共有 {tokens} 个词元；该模型最多只能读取 {limit} 个。",
                             "Shorten that prompt or leave it out of the set.", "请缩短该提示，或把它从提示集中去掉。"),
    "chat.prompt_too_long": ("提示长度为 {tokens} 个词元（包括系统提示和之前的对话）；该模型最多只能读取 {limit} 个。",
                             "Shorten the prompt, or start a new conversation.", "请缩短提示，或开始新的对话。"),
}
