"""What the Hub would refuse, refused before anything is staged: repo id, licence, shard size.

:class:`PublishError` is the one error of publishing: one line naming what and why.
"""

from __future__ import annotations

import re


class PublishError(Exception):
    """Publishing failed; the message is one line naming what and why."""


def parse_size(text: str | int) -> int:
    """``500MB``, ``2GiB``, ``1e6`` or an int -> bytes (decimal units, ``i`` for binary)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9.e+]+)\s*([kmgt]?)(i?)b?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r}: not a size (expected e.g. 500MB, 2GiB or a number of bytes)")
    try:
        number = float(match.group(1))
    except ValueError:
        raise ValueError(f"{text!r}: not a size (expected e.g. 500MB, 2GiB or a number of bytes)") from None
    exponent = "kmgt".find(match.group(2).lower()) + 1 if match.group(2) else 0
    value = number * (1024 if match.group(3) else 1000) ** exponent
    if value < 1:
        raise ValueError(f"{text!r}: a shard size must be at least 1 byte")
    return int(value)


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if the Hub accepts it as a dataset repo ``ORG/NAME``, else a one-line :class:`PublishError`.

    The rules are huggingface_hub's own ``validate_repo_id`` (characters, 96 per part, no ``--``,
    ``..`` or ``.git``), plus the namespace a dataset upload needs.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"{repo_id!r}: a dataset repo id is ORG/NAME (or USER/NAME)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"{repo_id if len(repo_id) <= 60 else repo_id[:57] + '...'!r}: not a valid Hub repo id "
                           f"(letters, digits, '-', '_', '.'; at most 96 per part; no '--', '..' or trailing "
                           f"'.git'; {len(repo_id)} characters given)") from exc
    return repo_id


def check_license_id(license: str) -> str:
    """``license`` if the Hub knows it (:data:`collection.card.HUB_LICENSES`), else a one-line :class:`PublishError`."""
    from collection.card import check_license

    try:
        return check_license(license)
    except ValueError as exc:
        raise PublishError(str(exc)) from None
