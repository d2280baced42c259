"""``studio train``: not written yet."""


def add_parser(sub):
    return sub.add_parser("train", help="(coming)")


def run(args) -> int:
    raise SystemExit("studio train is not available yet")
