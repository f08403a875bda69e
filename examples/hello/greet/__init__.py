from .words import hello


def banner(name: str) -> str:
    line = "=" * (len(name) + 8)
    return f"{line}\n{hello(name)}\n{line}"
