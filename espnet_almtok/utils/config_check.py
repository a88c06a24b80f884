"""Config keys are checked against the constructor they feed, with clear errors."""

import inspect
from typing import Any, Callable, Dict, Iterable, Optional


def accepted_keys(fn: Callable) -> set:
    """Keyword arguments ``fn`` accepts by name (``self`` excluded)."""
    return {
        name
        for name, p in inspect.signature(fn).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def check_keys(params: Dict[str, Any], valid: Iterable[str], where: str) -> None:
    """Refuse keys of ``params`` not in ``valid``, naming them and ``where``."""
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in {where}; valid keys: {sorted(valid)}"
        )


def build_checked(cls, params: Optional[Dict[str, Any]], where: str, **fixed):
    """``cls(**fixed, **params)``; keys ``cls`` does not take, or that ``fixed``
    already sets, are refused with a message naming ``where``."""
    params = dict(params or {})
    check_keys(params, accepted_keys(cls.__init__) - set(fixed), where)
    return cls(**fixed, **params)
