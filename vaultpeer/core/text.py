"""Checks on text that came from outside (JSON from a client or an import file)."""


def holds_lone_surrogate(value: object) -> bool:
    """Whether any string in ``value`` (nested in dicts and lists, keys included) holds a lone
    surrogate: what a ``"\\ud800"`` JSON escape decodes to. It is not Unicode text, so it could be
    neither encoded as UTF-8 (echoed back, written to a file) nor stored in an item."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, list):
            pending += item
    return False
