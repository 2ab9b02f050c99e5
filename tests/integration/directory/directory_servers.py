"""Real directory servers on 127.0.0.1 for the directory connector's tests and benchmarks.

* ``start_samba(folder)`` provisions a Samba Active Directory domain controller in ``folder``
  (``samba-tool domain provision --server-role=dc --dns-backend=NONE --use-rfc2307``), limits
  it to 127.0.0.1 and the LDAP service, and starts it. Samba's LDAP ports are fixed (389 for
  LDAP with StartTLS, 636 for LDAPS); its self-signed certificate (for DC1.school.test) and
  CA are in ``folder/private/tls``.
* ``start_slapd(folder)`` writes an OpenLDAP ``slapd.conf`` in ``folder`` and starts slapd on
  a free high port, plain LDAP, with the ppolicy and lastbind overlays.

Both are stopped with ``stop()``. Each creates a service account ``sweeper`` (the account the
connector binds as) with the rights a site would delegate to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3

PACKAGES = "bash .ci/packages.sh (Debian: apt-get install samba samba-ad-dc slapd ldap-utils)"
SAMBA_BASE = "DC=school,DC=test"
SAMBA_NAME = "DC1.school.test"
ADMIN_PASSWORD = "Adm1n!Passw0rd-test"
SWEEPER_PASSWORD = "Sw33per!Passw0rd-test"
SLAPD_BASE = "dc=school,dc=test"


class ServerFailed(RuntimeError):
    """A test server could not be started; the message says how to fix it."""


def _need(program: str) -> str:
    path = shutil.which(program) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin") if (p := Path(d, program)).exists()), None
    )
    if path is None:
        raise ServerFailed(f"{program} is not installed; install it with: {PACKAGES}")
    return path


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A server process started in a session (and process group) of its own, not as a child
    of the test process: a test that checks its own children (workers reaped) sees none."""

    pid: int
    group: int
    log: Path

    @classmethod
    def spawn(cls, argv: list[str], log: Path) -> Server:
        launcher = subprocess.Popen(
            ["sh", "-c", '"$@" >"$SERVER_LOG" 2>&1 </dev/null & echo $!', "sh", *argv],
            env={**os.environ, "SERVER_LOG": str(log)},
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        out, _ = launcher.communicate(timeout=30)
        return cls(int(out), launcher.pid, log)

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait_for(self, port: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerFailed(f"the server exited:\n{self.log.read_text()[-2000:]}")
            if _port_in_use(port):
                return
            time.sleep(0.1)
        raise ServerFailed(f"the server did not listen on 127.0.0.1:{port} within {seconds:.0f} s")

    def stop(self) -> None:
        """Stop the process group this module started (nothing else), politely first."""
        for sig, seconds in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.group, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + seconds
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not self.alive():
                return


@dataclass
class SambaDC:
    """A running Samba AD DC."""

    folder: Path
    process: Server
    base: str = SAMBA_BASE
    admin_dn: str = f"CN=Administrator,CN=Users,{SAMBA_BASE}"
    sweeper_dn: str = f"CN=sweeper,CN=Users,{SAMBA_BASE}"

    @property
    def ca_file(self) -> Path:
        return self.folder / "private" / "tls" / "ca.pem"

    def tls(self) -> ldap3.Tls:
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.ca_file), valid_names=[SAMBA_NAME]
        )

    def connection(self, credential: str = "directory") -> dict[str, Any]:
        """The RoPA's connection settings for the sweeper's account on this DC (LDAPS)."""
        return {
            "servers": ["ldaps://127.0.0.1:636"],
            "ca_file": str(self.ca_file),
            "tls_server_name": SAMBA_NAME,
            "bind_dn": self.sweeper_dn,
            "credential": credential,
        }

    def admin(self) -> ldap3.Connection:
        """A bound LDAPS connection as the domain's Administrator, to seed and inspect data."""
        server = ldap3.Server("ldaps://127.0.0.1:636", use_ssl=True, tls=self.tls())
        conn = ldap3.Connection(
            server, user=self.admin_dn, password=ADMIN_PASSWORD, raise_exceptions=True
        )
        conn.bind()
        return conn

    def stop(self) -> None:
        self.process.stop()


def start_samba(folder: Path, *, reuse: bool = False) -> SambaDC:
    """Provision a Samba AD DC in ``folder`` and start it on 127.0.0.1 (with ``reuse``, start
    the one provisioned there before, if any). Raise ServerFailed saying how to fix it if it
    cannot be started."""
    samba_tool = _need("samba-tool")
    _need("samba")
    for port in (389, 636):
        if _port_in_use(port):
            raise ServerFailed(
                f"127.0.0.1:{port} is in use, and Samba's LDAP ports cannot be moved: stop the "
                "server listening there (another Samba DC or slapd) and run the tests again"
            )
    target = folder / "dc"
    conf = target / "etc" / "smb.conf"
    if reuse and conf.exists():
        return _run_samba(target, seed=False)
    provision = subprocess.run(
        [
            samba_tool,
            "domain",
            "provision",
            f"--targetdir={target}",
            "--realm=SCHOOL.TEST",
            "--domain=SCHOOL",
            "--server-role=dc",
            "--dns-backend=NONE",
            "--use-rfc2307",
            "--host-name=dc1",
            f"--adminpass={ADMIN_PASSWORD}",
            "--option=interfaces = 127.0.0.1",
            "--option=bind interfaces only = yes",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if provision.returncode != 0:
        raise ServerFailed(f"samba-tool domain provision failed:\n{provision.stderr[-3000:]}")
    text = conf.read_text()
    text = text.replace("[global]\n", f"[global]\n\tpid directory = {target / 'run'}\n", 1)
    text = _set(text, "server services", "ldap")
    text = _set(text, "log file", str(target / "log.%m"))
    text = text.replace("[global]\n", "[global]\n\tprefork children = 2\n", 1)
    # Test data need not survive a crash: no fsync per change (as Samba's own test suite).
    text = text.replace("[global]\n", "[global]\n\tldb:nosync = true\n", 1)
    conf.write_text(text)
    (target / "run").mkdir(exist_ok=True)
    return _run_samba(target, seed=True)


def _run_samba(target: Path, *, seed: bool) -> SambaDC:
    conf = target / "etc" / "smb.conf"
    log = target / "samba.out"
    process = Server.spawn([_need("samba"), "-s", str(conf), "--foreground", "--debug-stdout"], log)
    dc = SambaDC(target, process)
    try:
        process.wait_for(636, 60)
        process.wait_for(389, 10)
        _ready(dc)
        if seed:
            _seed_samba(dc)
    except BaseException:
        dc.stop()
        raise
    return dc


def _set(conf: str, name: str, value: str) -> str:
    lines = [
        f"\t{name} = {value}" if line.strip().startswith(f"{name} =") else line
        for line in conf.splitlines()
    ]
    return "\n".join(lines) + "\n"


def _ready(dc: SambaDC) -> None:
    """Wait until the DC answers a bind: the LDAPS listener accepts before it is ready."""
    deadline = time.monotonic() + 30
    while True:
        try:
            dc.admin().unbind()
            return
        except ldap3.core.exceptions.LDAPException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _seed_samba(dc: SambaDC) -> None:
    """The sweeper's service account, with the rights of Account Operators (create, change
    and delete user accounts, but not administrators)."""
    with dc.admin() as conn:
        conn.add(
            dc.sweeper_dn,
            ["top", "person", "organizationalPerson", "user"],
            {
                "sAMAccountName": "sweeper",
                "unicodePwd": f'"{SWEEPER_PASSWORD}"'.encode("utf-16-le"),
                "userAccountControl": "66048",  # normal account, password does not expire
            },
        )
        conn.modify(
            f"CN=Account Operators,CN=Builtin,{dc.base}",
            {"member": [(ldap3.MODIFY_ADD, [dc.sweeper_dn])]},
        )


@dataclass
class Slapd:
    """A running OpenLDAP slapd."""

    folder: Path
    port: int
    process: Server
    base: str = SLAPD_BASE
    admin_dn: str = f"cn=admin,{SLAPD_BASE}"
    sweeper_dn: str = f"cn=sweeper,{SLAPD_BASE}"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def admin(self) -> ldap3.Connection:
        conn = ldap3.Connection(
            ldap3.Server(self.url),
            user=self.admin_dn,
            password=ADMIN_PASSWORD,
            raise_exceptions=True,
        )
        conn.bind()
        return conn

    def stop(self) -> None:
        self.process.stop()


SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
moduleload lastbind
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args

database mdb
suffix "{base}"
rootdn "cn=admin,{base}"
rootpw {password}
directory {folder}/db
maxsize 268435456
# The sweeper may read everything and change accounts; a plain search of more than three
# entries is refused, so only a paged search reads a larger location.
limits dn.exact="cn=sweeper,{base}" size.soft=3 size.hard=3 size.prtotal=unlimited
access to attrs=userPassword by self write by anonymous auth by * none
# What is below an OU named "closed" the sweeper may not read (an OU it cannot inspect).
access to dn.regex="^.+,ou=closed,ou=[^,]+,{base}$" by dn.exact="cn=sweeper,{base}" none by * read
access to * by dn.exact="cn=sweeper,{base}" write by * read
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{base}"
overlay lastbind
"""


def start_slapd(folder: Path, port: int | None = None, *, reuse: bool = False) -> Slapd:
    """Write a slapd configuration in ``folder`` and start slapd on 127.0.0.1 (a free high
    port unless given); with ``reuse``, keep the database made there before, if any. Raise
    ServerFailed saying how to fix it if it cannot be started."""
    slapd = _need("slapd")
    seed = not (reuse and (folder / "db" / "data.mdb").exists())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "db").mkdir(exist_ok=True)
    conf = folder / "slapd.conf"
    conf.write_text(SLAPD_CONF.format(folder=folder, base=SLAPD_BASE, password=ADMIN_PASSWORD))
    port = port or free_port()
    log = folder / "slapd.out"
    argv = [slapd, "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/", "-d", "0"]
    process = Server.spawn(argv, log)
    server = Slapd(folder, port, process)
    try:
        process.wait_for(port, 30)
        if seed:
            _seed_slapd(server)
    except BaseException:
        server.stop()
        raise
    return server


def _seed_slapd(server: Slapd) -> None:
    base = server.base
    with server.admin() as conn:
        conn.add(base, ["dcObject", "organization"], {"o": "School", "dc": "school"})
        for ou in ("policies", "people", "groups", "leavers"):
            conn.add(f"ou={ou},{base}", ["organizationalUnit"], {"ou": ou})
        conn.add(
            f"cn=default,ou=policies,{base}",
            ["person", "pwdPolicy"],
            {"sn": "policy", "pwdAttribute": "userPassword", "pwdLockout": "TRUE"},
        )
        conn.add(
            server.sweeper_dn,
            ["person"],
            {"sn": "sweeper", "userPassword": SWEEPER_PASSWORD},
        )
