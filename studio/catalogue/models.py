"""models"""

MESSAGES: dict[str, tuple[str, str, str]] = {
}
