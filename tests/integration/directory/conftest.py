"""Real directory servers on 127.0.0.1 for the directory connector's tests.

A Samba AD domain controller and an OpenLDAP slapd are started once per test session (Samba
takes about ten seconds to provision) and stopped at its end. Each test gets an OU of its own
(``ad``, ``ldap``, or ``directory`` for both in turn), removed afterwards. A server that cannot
be started fails the tests with the command that fixes it: these tests never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from directory_data import Directory, samba_directory, slapd_directory
from directory_servers import SambaDC, ServerFailed, Slapd, start_samba, start_slapd


@pytest.fixture(scope="session")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    """A Samba AD DC on 127.0.0.1:389 (StartTLS) and :636 (LDAPS)."""
    try:
        dc = start_samba(tmp_path_factory.mktemp("samba"))
    except ServerFailed as err:
        pytest.fail(f"cannot start the Samba AD DC: {err}", pytrace=False)
    yield dc
    dc.stop()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """An OpenLDAP slapd on a free high port of 127.0.0.1, plain LDAP."""
    try:
        server = start_slapd(tmp_path_factory.mktemp("slapd"))
    except ServerFailed as err:
        pytest.fail(f"cannot start slapd: {err}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def ad(samba: SambaDC, tmp_path: Path) -> Iterator[Directory]:
    """An OU of this test's own in the Samba AD DC."""
    directory = samba_directory(samba, tmp_path)
    yield directory
    directory.remove()


@pytest.fixture
def ldap(slapd: Slapd, tmp_path: Path) -> Iterator[Directory]:
    """An OU of this test's own in slapd."""
    directory = slapd_directory(slapd, tmp_path)
    yield directory
    directory.remove()


@pytest.fixture(params=["ad", "openldap"])
def directory(request: pytest.FixtureRequest) -> Directory:
    """An OU of this test's own, in Samba AD and then in OpenLDAP."""
    name = "ad" if request.param == "ad" else "ldap"
    result: Directory = request.getfixturevalue(name)
    return result
