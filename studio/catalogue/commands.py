"""Stops, checks before work starts, and the command-line mistakes (eval, export, chat, launch)."""

_CSV = ("Give the path of a .csv file in a folder you can write to.", "请给出一个你有写权限的文件夹中的 .csv 文件路径。")
_PROMPTS = ("Write the prompts as JSON Lines (one object per line) or as a CSV with a 'prompt' column.",
            "请把提示写成 JSON Lines（每行一个对象），或带 'prompt' 列的 CSV。")

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
    "chat.prompt_too_long": ("提示长度为 {tokens} 个词元（包括系统提示和之前的对话）；该模型最多只能读取 {limit} 个。",
                             "Shorten the prompt, or start a new conversation.", "请缩短提示，或开始新的对话。"),
}
