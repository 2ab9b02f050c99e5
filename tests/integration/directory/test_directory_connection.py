"""Connecting: verified TLS, explicit insecurity with a warning, failover, clear bind errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from directory_data import Directory
from directory_servers import SWEEPER_PASSWORD
from pydantic import SecretStr
from structlog.testing import capture_logs
from tcp_proxy import Relay

from connectors.base import ConnectorContext, ScanFinding
from connectors.directory import DirectoryConnector
from sweeper.errors import SystemUnreachable


def check(directory: Directory, **connection: object) -> DirectoryConnector:
    connector = directory.connector(**connection)
    with connector:
        connector.check()
    return connector


def test_ldaps_verifies_the_certificate_against_the_ca_file(ad: Directory) -> None:
    """LDAPS with the DC's CA file binds; the connector reports which server it uses."""
    connector = ad.connector()
    with connector:
        connector.check()
        assert connector._url == "ldaps://127.0.0.1:636"


def test_starttls_on_port_389(ad: Directory) -> None:
    """An ldap:// URL upgrades to TLS (StartTLS) by default, verified the same way."""
    check(ad, servers=["ldap://127.0.0.1:389"])


def test_certificate_from_another_ca_is_refused(ad: Directory, tmp_path: Path) -> None:
    """A server certificate that the configured CA did not sign fails the check."""
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Other CA",
            "-keyout",
            str(tmp_path / "k.pem"),
            "-out",
            str(other_ca),
        ],
        check=True,
        capture_output=True,
    )
    with pytest.raises(SystemUnreachable, match="certificate verify failed"):
        check(ad, ca_file=str(other_ca))


def test_certificate_for_another_name_is_refused_with_the_fix(ad: Directory) -> None:
    """Without tls_server_name, a certificate for DC1.school.test does not fit 127.0.0.1, and
    the error says how to fix it."""
    with pytest.raises(SystemUnreachable, match=r"set connection\.tls_server_name"):
        check(ad, tls_server_name=None)


def test_missing_ca_file_is_named(ad: Directory) -> None:
    """A ca_file that does not exist is named in the error."""
    with pytest.raises(SystemUnreachable, match=r"ca_file 'nowhere\.pem' is not a readable file"):
        check(ad, ca_file="nowhere.pem")


def test_unverified_tls_is_warned_on_every_run(ad: Directory) -> None:
    """verify_tls: false connects, but warns in the log and as a finding of every scan."""
    ad.user("Jan")
    connector = ad.connector(verify_tls=False)
    with capture_logs() as logs:
        out = ad.scan(connector=connector)
    assert any(e["event"] == "insecure directory connection" for e in logs)
    findings = [o for o in out if isinstance(o, ScanFinding)]
    assert [f.kind for f in findings] == ["insecure_connection"]
    assert "verify_tls: false" in findings[0].message


def test_plain_ldap_is_warned_on_every_run(ldap: Directory) -> None:
    """tls: none (plain LDAP) works where configured, with the warning as a finding."""
    out = ldap.scan()
    findings = [o for o in out if isinstance(o, ScanFinding)]
    assert [f.kind for f in findings] == ["insecure_connection"]
    assert "plain LDAP" in findings[0].message


def test_samba_refuses_a_plain_bind_and_says_why(ad: Directory) -> None:
    """A simple bind over plain LDAP to a DC that requires TLS explains the refusal."""
    with pytest.raises(SystemUnreachable, match="refuses a simple bind without TLS"):
        check(ad, servers=["ldap://127.0.0.1:389"], tls="none")


def test_bind_failure_names_the_dc_and_the_reason_not_the_password(directory: Directory) -> None:
    """A wrong password says which server refused which account, and why, without the password."""
    wrong = "Wr0ng!" + SWEEPER_PASSWORD
    context = ConnectorContext(directory.base_dir, lambda _: SecretStr(wrong))
    connector = DirectoryConnector(directory.system(), context)
    with pytest.raises(SystemUnreachable) as info:
        connector.check()
    message = str(info.value)
    server = directory.connection["servers"][0]
    assert f"bind to {server} as {directory.connection['bind_dn']} failed" in message
    assert "invalidCredentials" in message
    assert wrong not in message and SWEEPER_PASSWORD not in message


def test_ad_bind_failure_spells_out_the_reason(ad: Directory) -> None:
    """AD's 'data 52e' in a bind error is spelled out."""
    context = ConnectorContext(ad.base_dir, lambda _: SecretStr("not it"))
    with pytest.raises(SystemUnreachable, match=r"invalidCredentials \(wrong password\)"):
        DirectoryConnector(ad.system(), context).check()


def test_fails_over_to_the_next_dc(ad: Directory) -> None:
    """When the first listed DC does not answer, the next one is used, with a warning."""
    dead = Relay(636)
    dead.cut()
    servers = [f"ldaps://127.0.0.1:{dead.port}", "ldaps://127.0.0.1:636"]
    with capture_logs() as logs:
        connector = check(ad, servers=servers, timeout=3)
    assert connector._url == "ldaps://127.0.0.1:636"
    assert any(e["event"] == "directory server unreachable" for e in logs)


def test_every_dc_down_lists_each_with_its_reason(ad: Directory) -> None:
    """When no listed DC answers, the error names each one and why."""
    first, second = Relay(636), Relay(636)
    first.cut()
    second.cut()
    servers = [f"ldaps://127.0.0.1:{first.port}", f"ldaps://127.0.0.1:{second.port}"]
    with pytest.raises(SystemUnreachable) as info:
        check(ad, servers=servers, timeout=3)
    assert f"127.0.0.1:{first.port}" in str(info.value)
    assert f"127.0.0.1:{second.port}" in str(info.value)
