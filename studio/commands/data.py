"""``studio data``: not written yet."""


def add_parser(sub):
    return sub.add_parser("data", help="(coming)")


def run(args) -> int:
    raise SystemExit("studio data is not available yet")
