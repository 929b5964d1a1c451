"""nats-py from synchronous code: one asyncio event loop per process, on its own thread.

A cep worker is a synchronous ZeroMQ loop; nats-py is asyncio. Each process that talks to NATS
starts one daemon thread running an event loop (`loop()`), and the worker hands it coroutines:
`call` waits for the result, `submit` does not (a publish whose acknowledgement is collected
later). The nats-py client keeps reading, answering pings and reconnecting on that thread while
the worker computes, so a busy pass never makes the server think the client is gone.

`NatsConnection` is what a pipeline writes to reach a server: `url` (several, comma-separated,
for a cluster) and how to authenticate (a token, a user and password, an nkey seed file or a
.creds file). Its secrets never reach a message: `describe()` is the
form errors and logs print.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from cep.errors import RuntimeFailure

T = TypeVar("T")

INSTALL_HINT = "pip install 'cep[nats]'"
DEFAULT_URL = "nats://127.0.0.1:4222"
CONNECT_S = 5.0
"""How long the first connection to a server may take (a server that is up answers at once)."""
CALL_TIMEOUT_S = 30.0
"""How long a blocking call into the loop waits at most (a server that never answers)."""


class NatsUnavailable(RuntimeFailure):
    """nats-py is not installed, or no server could be reached."""

    restartable = False


def require_nats() -> Any:
    """The `nats` package; NatsUnavailable with the install command when it is absent."""
    try:
        import nats
    except ImportError:
        raise NatsUnavailable(f"NATS needs the nats-py client, which is not installed: "
                              f"{INSTALL_HINT}") from None
    return nats


class EventLoopThread:
    """An asyncio event loop on a daemon thread; coroutines go in from any other thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self._posted: deque[tuple[Callable[..., Any], tuple]] = deque()
        self._woken = False  # a run of `_run_posted` is scheduled and has not begun
        self._thread = threading.Thread(target=self.loop.run_forever, name="cep-nats", daemon=True)
        self._thread.start()

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run `callback(*args)` on the loop soon, after everything posted before it. A burst of
        posts wakes the loop once: each wake-up is a write to the loop's self-pipe, after which
        the posting thread waits for the loop thread to let go of the GIL (profiled: a fifth of
        a gateway's samples under at_least_once over NATS)."""
        self._posted.append((callback, args))
        if not self._woken:
            self._woken = True
            self.loop.call_soon_threadsafe(self._run_posted)

    def _run_posted(self) -> None:
        self._woken = False  # first: what is posted from now on wakes the loop again
        while self._posted:
            callback, args = self._posted.popleft()
            callback(*args)

    def call(self, coroutine: Awaitable[T], timeout: float | None = CALL_TIMEOUT_S) -> T:
        """Run `coroutine` on the loop and return its result (or raise its exception)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the coroutine's own timeout
                raise
            future.cancel()
            raise TimeoutError(f"NATS did not answer within {timeout:g} s") from None

    def submit(self, coroutine: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Start `coroutine` on the loop; its future says when it is done."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]


_loop: EventLoopThread | None = None
_loop_lock = threading.Lock()


def loop() -> EventLoopThread:
    """This process's event-loop thread, started at first use (a forked worker starts its own:
    threads do not survive a fork)."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.pid != os.getpid():
            _loop = EventLoopThread()
        return _loop


class NatsConnection(BaseModel):
    """Where a NATS server is and how to log in; the `url` and credential keys of every NATS
    source, sink and edge. Credentials come from the environment (`${NATS_TOKEN}`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(DEFAULT_URL, description="nats://HOST:PORT; several comma-separated for a cluster")
    token: str | None = Field(None, repr=False, description="authentication token, e.g. ${NATS_TOKEN}")
    user: str | None = Field(None, description="user name (with password)")
    password: str | None = Field(None, repr=False, description="password, e.g. ${NATS_PASSWORD}")
    tls_ca: str | None = Field(None, description="CA certificate file that signed the server's")
    tls_cert: str | None = Field(None, description="client certificate file (mutual TLS)")
    tls_key: str | None = Field(None, description="client key file (mutual TLS)")
    nkey: str | None = Field(None, repr=False, description="file holding the user's nkey seed (SU...), "
                                                           "e.g. ${NATS_NKEY_FILE}")
    creds: str | None = Field(None, repr=False, description="user credentials file (.creds: the user's "
                                                            "JWT and nkey seed), e.g. ${NATS_CREDS}")

    @field_validator("url")
    @classmethod
    def _urls(cls, value: str) -> str:
        for url in servers(value):
            if urlsplit(url).scheme not in ("nats", "tls", "ws", "wss"):
                raise ValueError(f"{redact(url)!r} is not a NATS URL (write nats://HOST:PORT)")
        return value

    @field_validator("tls_ca", "tls_cert", "tls_key", "nkey", "creds")
    @classmethod
    def _file(cls, value: str | None, info: ValidationInfo) -> str | None:
        from cep.components.sources.files import resolve_existing
        return value if value is None else str(resolve_existing(value, info, FILES[info.field_name]))

    @model_validator(mode="after")
    def _key_with_cert(self) -> "NatsConnection":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: the client certificate and its key")
        if self.nkey is not None and self.creds is not None:
            raise ValueError("nkey and creds are two ways to log in as a user: give one (a .creds "
                             "file holds the user's nkey seed already)")
        return self

    def describe(self) -> str:
        """The servers as messages may print them: no password or token."""
        return ", ".join(redact(url) for url in servers(self.url))

    def options(self) -> dict[str, Any]:
        """Keyword arguments of `nats.connect` for these settings."""
        options: dict[str, Any] = {"servers": servers(self.url)}
        for key in ("token", "user", "password"):
            value = getattr(self, key)
            if value is not None:
                options[key] = value
        if self.nkey is not None:
            options["nkeys_seed"] = check_nkey_file(self.nkey)
        if self.creds is not None:
            options["user_credentials"] = check_creds_file(self.creds)
        if self.tls_ca or self.tls_cert:
            options["tls"] = self._tls_context()
        return options

    def _tls_context(self) -> Any:
        import ssl
        context = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert:
            check_private(self.tls_key, "TLS key")
            context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


FILES = {"tls_ca": "TLS file", "tls_cert": "TLS file", "tls_key": "TLS file",
         "nkey": "nkey seed file", "creds": "credentials file"}
CREDENTIAL_KEYS = ("token", "user", "password", "nkey", "creds")
"""The settings that log in: a refused login points at them."""


def require_nkeys() -> Any:
    """The `nkeys` package (nats-py signs the server's challenge with it); NatsUnavailable with
    the install command when it is absent."""
    try:
        import nkeys
    except ImportError:
        raise NatsUnavailable(f"NATS nkey and .creds logins need the nkeys package, which is not "
                              f"installed: {INSTALL_HINT}") from None
    return nkeys


def check_nkey_file(path: str) -> str:
    """`path`, once it holds one user's nkey seed; NatsUnavailable naming what is wrong, never
    showing the file's content."""
    nkeys = require_nkeys()
    seed = _read_secret(path, "nkey seed file").strip()
    try:
        nkeys.from_seed(seed.encode())
    except Exception:  # nkeys raises its own kinds, and binascii's for what is no base32
        raise NatsUnavailable(f"the nkey seed file {path} holds no nkey seed (one line starting "
                              f"with SU, as `nk -gen user` writes it)") from None
    if not seed.startswith("SU"):
        raise NatsUnavailable(f"the nkey seed file {path} holds the seed of an operator, account or "
                              f"server, not of a user (SU...)")
    return path


def check_creds_file(path: str) -> str:
    """`path`, once it looks like a user credentials file (a user JWT and its nkey seed);
    NatsUnavailable naming what is missing."""
    require_nkeys()
    text = _read_secret(path, "credentials file")
    for part, what in (("BEGIN NATS USER JWT", "user JWT"), ("BEGIN USER NKEY SEED", "nkey seed")):
        if part not in text:
            raise NatsUnavailable(f"the credentials file {path} has no {what} (a .creds file as `nsc "
                                  f"generate creds` writes it holds both)")
    return path


def _read_secret(path: str, what: str) -> str:
    """The text of the secret file `path`; NatsUnavailable if it cannot be read, or is not kept
    private (`secret_file_problems`)."""
    check_private(path, what)
    try:
        return open(path, encoding="ascii").read()
    except (OSError, UnicodeDecodeError) as exc:
        raise NatsUnavailable(f"cannot read the {what} {path}: "
                              f"{exc.strerror if isinstance(exc, OSError) else 'not text'}") from None


def check_private(path: str, what: str) -> None:
    """NatsUnavailable naming what is wrong if the secret file `path` is not private to this user."""
    from cep.runtime.security import secret_file_problems
    if not Path(path).is_file():
        return  # reading it says what is wrong
    problems = secret_file_problems(Path(path))
    if problems:
        raise NatsUnavailable(f"the {what} {'; '.join(problems)}")


def servers(url: str) -> list[str]:
    return [part.strip() for part in url.split(",") if part.strip()]


def redact(url: str) -> str:
    """`url` without the user information (`nats://user:secret@host` -> `nats://***@host`)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def connect(connection: NatsConnection, name: str) -> Any:
    """A connected nats-py client (on this process's loop), named `name` in the server's
    monitoring; NatsUnavailable naming the servers (never the credentials) when none answers."""
    nats = require_nats()
    options = connection.options()  # a credentials file that is wrong fails here, saying why
    errors: list[Exception] = []

    async def note(exc: Exception) -> None:
        """nats-py reports a refused login or TLS handshake here and then only says "no servers".
        (A lost connection it then reconnects is no failure: what matters fails where it is used.)"""
        errors.append(exc)

    async def opened() -> Any:
        # each server is tried once now (a refused connection fails at once); once connected,
        # a lost server is retried without end, while a cluster's others take over
        client = await asyncio.wait_for(nats.connect(
            name=name, connect_timeout=2, reconnect_time_wait=0.25, max_reconnect_attempts=1,
            allow_reconnect=True, error_cb=note, **options), CONNECT_S)
        # nats-py has one option for both: how often the first connection tries each server
        # and how often a lost one is retried. It reads it from its public `options` at each
        # reconnection, so setting it once connected is how both hold (no other API does).
        client.options["max_reconnect_attempts"] = -1
        return client

    try:
        return loop().call(opened())
    except TimeoutError:
        cause = connection_failure(errors, None)
        why = f" (last: {type(cause).__name__}: {redact(str(cause))})" if cause else ""
        raise NatsUnavailable(f"cannot connect to NATS at {connection.describe()}: no server "
                              f"answered within {CONNECT_S:g} s{why}") from None
    except Exception as exc:  # nats-py raises many kinds: auth, TLS, a refused connection
        cause = connection_failure(errors, exc)
        raise NatsUnavailable(f"cannot connect to NATS at {connection.describe()}: "
                              f"{type(cause).__name__}: {redact(str(cause))}"
                              f"{login_hint(connection, cause)}") from None


def connection_failure(errors: list[Exception], raised: Exception | None) -> Exception | None:
    """What to name as the cause of a failed connection: a refused login wherever it came among
    the errors nats-py reported (the server closes after refusing, so the next attempt may only
    see its connection reset), else the last one reported, else what `connect` raised."""
    refused = [error for error in errors if type(error).__name__ == "AuthorizationError"]
    if refused:
        return refused[0]
    return errors[-1] if errors else raised


def login_hint(connection: NatsConnection, cause: Exception | None) -> str:
    """A server that refuses a login says so and closes at once; the close can reach the client
    first, as a reset connection with the refusal unread. The message then names the likely
    reason: wrong credentials, or none where the server requires them."""
    if not isinstance(cause, ConnectionResetError):
        return ""
    if any(getattr(connection, key) is not None for key in CREDENTIAL_KEYS):
        return " (the server closed the connection during login: check the credentials)"
    return " (the server closed the connection during login: does it require credentials?)"


def close(client: Any) -> None:
    """Flush and close `client`, best effort (the server may be gone)."""
    try:
        loop().call(client.drain(), timeout=5)
    except Exception:  # closing a connection to a dead server must not fail a clean shutdown
        try:
            loop().call(client.close(), timeout=2)
        except Exception:
            pass
