"""huggingface_hub and transport failures as one-line :class:`PublishError` messages a user can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from collection.publish.checks import PublishError


def _is_network_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return isinstance(exc, (ConnectionError, TimeoutError)) or bool(
        names & {"TransportError", "NetworkError", "ConnectError", "TimeoutException", "ConnectionError"})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def hub_errors(endpoint: str, repo_id: str, action: str, resume_hint: str = "") -> Iterator[None]:
    """Turn huggingface_hub / transport failures into one-line :class:`PublishError`s."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled:
        raise PublishError(f"cannot publish {repo_id}: HF_HUB_OFFLINE is set (unset it to upload)") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if getattr(exc, "response", None) is not None else None
        if status == 401:
            message = (f"{endpoint} rejected the token (401 Unauthorized) while {action}; "
                       "log in with `hf auth login`, set HF_TOKEN or pass --token")
        elif status == 403:
            message = (f"no write permission on {repo_id} (403 Forbidden) while {action}; "
                       f"use a token with write access to '{repo_id.split('/')[0]}'")
        else:
            message = f"the Hub answered {status} while {action}: {_first_line(exc)}"
        raise PublishError(message + resume_hint) from exc
    except Exception as exc:
        if _is_network_error(exc):
            raise PublishError(f"cannot reach the Hub at {endpoint} while {action} ({_first_line(exc)}); "
                               f"check the network or HF_ENDPOINT{resume_hint}") from exc
        raise
