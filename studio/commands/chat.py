"""``studio chat``: not written yet."""


def add_parser(sub):
    return sub.add_parser("chat", help="(coming)")


def run(args) -> int:
    raise SystemExit("studio chat is not available yet")
