"""Credentials for a remote SPARQL store over HTTP, for serving from it
(:mod:`namkg.query.remote`) and publishing into it (:mod:`namkg.kg.publish`).

A user and password (Digest, as Virtuoso's ``/sparql-auth`` wants, or Basic) or a Bearer
token, sent only when the remote asks for them; they never appear in messages, logs or URLs:
the command line takes the *names* of environment variables holding them.

>>> http_auth(("dba", "secret")), http_auth(token="t"), http_auth()
(ChallengeAuth(***), BearerAuth(***), None)
>>> check_url("http://dba:secret@h:8890/sparql")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: credentials in the URL are refused; pass the password or token by the name of ...
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from requests.auth import AuthBase, HTTPBasicAuth, HTTPDigestAuth

__all__ = ["BearerAuth", "ChallengeAuth", "check_url", "credentials_from_env", "http_auth"]


class ChallengeAuth(AuthBase):
    """User and password, sent only when the server asks, in the scheme it asks for.

    Digest (Virtuoso's ``-auth`` endpoints) is answered by requests' own handler; a Basic
    challenge (Fuseki, GraphDB) is answered here, and Basic is then sent up front.
    """

    def __init__(self, user: str, password: str):
        self._digest = HTTPDigestAuth(user, password)
        self._basic = HTTPBasicAuth(user, password)
        self._scheme: str | None = None

    def __call__(self, r):
        if self._scheme == "basic":
            return self._basic(r)
        r = self._digest(r)
        r.register_hook("response", self._answer_basic)
        return r

    def _answer_basic(self, r, **kwargs):
        challenge = r.headers.get("www-authenticate", "")
        if (r.status_code != 401 or self._scheme == "basic"
                or not re.search(r"\bbasic\b", challenge, re.I)
                or re.search(r"\bdigest\b", challenge, re.I)):
            return r
        self._scheme = "basic"
        r.content  # noqa: B018 - read the body so the connection can be reused
        r.close()
        prep = r.request.copy()
        self._basic(prep)
        again = r.connection.send(prep, **kwargs)
        again.history.append(r)
        again.request = prep
        return again

    def __repr__(self) -> str:  # never the password
        return "ChallengeAuth(***)"


class BearerAuth(AuthBase):
    def __init__(self, token: str):
        self._token = token

    def __call__(self, r):
        r.headers["Authorization"] = "Bearer " + self._token
        return r

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def http_auth(auth: tuple[str, str] | None = None, token: str | None = None) -> AuthBase | None:
    """The requests auth for a user/password pair (Digest or Basic, as challenged) or a token."""
    if auth is not None and token is not None:
        raise ValueError("give a user and password or a token, not both")
    if token is not None:
        return BearerAuth(token)
    if auth is not None:
        return ChallengeAuth(*auth)
    return None


def credentials_from_env(user: str | None = None, password_env: str | None = None,
                         token_env: str | None = None,
                         env: Mapping[str, str] | None = None):
    """``(auth, token)`` from the *names* of environment variables (``--password-env VAR``).

    >>> credentials_from_env("dba", "PW", env={"PW": "x"})
    (('dba', 'x'), None)
    >>> credentials_from_env(token_env="T", env={})
    Traceback (most recent call last):
    ...
    ValueError: the environment variable T is not set or empty
    """
    env = os.environ if env is None else env

    def read(name: str) -> str:
        value = env.get(name, "")
        if not value:
            raise ValueError(f"the environment variable {name} is not set or empty")
        return value

    if password_env and token_env:
        raise ValueError("give --password-env or --token-env, not both")
    if password_env:
        if not user:
            raise ValueError("--password-env needs --user")
        return (user, read(password_env)), None
    if token_env:
        return None, read(token_env)
    return None, None


def check_url(url: str) -> str:
    """Refuse URLs that carry credentials (they end up in logs and process lists)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if "@" in parts.netloc:
        raise ValueError("credentials in the URL are refused; pass the password or token by "
                         "the name of an environment variable (--password-env / --token-env)")
    return url
