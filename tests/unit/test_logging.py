"""Masking of secrets in operational logs and the audit log."""

from __future__ import annotations

import pytest

from sweeper.logging import is_secret_key, redact


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "db_password",
        "PASSWORD",
        "passwd",
        "pwd",
        "passphrase",
        "aws_secret_access_key",
        "secretAccessKey",
        "session_token",
        "sessionToken",
        "tokens",
        "api_key",
        "apiKey",
        "private_key",
        "credential_value",
        "bind-password",
    ],
)
def test_secret_names_are_masked(name: str) -> None:
    """A field named after a secret, in any spelling, is masked."""
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    ["bypassed_governance", "overrode_governance", "passage", "compass", "tokenizer", "reason"],
)
def test_names_that_only_contain_a_secret_word_are_kept(name: str) -> None:
    """A field whose name merely contains 'pass' or 'token' inside a word is not masked."""
    assert not is_secret_key(name)


def test_passwords_in_urls_are_redacted() -> None:
    """A password inside a URL becomes ***, the rest of the URL stays."""
    assert redact("postgresql://sis:hunter2@db/sis") == "postgresql://sis:***@db/sis"
