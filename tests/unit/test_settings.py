"""Settings: where credentials are looked up, and errors that never leak a secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sweeper import settings as settings_module
from sweeper.errors import CredentialMissing, SettingsInvalid
from sweeper.settings import load_settings

OTHER_SECRETS = ("env-secret-for-ldap", "file-secret-for-s3", "dir-secret-for-state")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SWEEPER_ variables, no credentials directory and no system config file."""
    for name in list(os.environ):
        if name.upper().startswith("SWEEPER_") or name in (
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", tmp_path / "no-such-config.yaml")


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweeper.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def credentials_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **files: str) -> Path:
    """Create $CREDENTIALS_DIRECTORY holding one file per credential."""
    folder = tmp_path / "credentials"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_text(content, encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    return folder


# -- lookup order ------------------------------------------------------------------------


def test_environment_wins_over_config_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SWEEPER_CREDENTIALS__SIS is used even when the file and the directory also have 'sis'."""
    monkeypatch.setenv("SWEEPER_CREDENTIALS__SIS", "from-env")
    credentials_dir(tmp_path, monkeypatch, sis="from-dir\n")
    config = config_file(tmp_path, "credentials:\n  sis: from-file\n")
    assert load_settings(config).credential("sis").get_secret_value() == "from-env"


def test_config_file_wins_over_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an environment variable, the config file's credential beats the directory's."""
    credentials_dir(tmp_path, monkeypatch, sis="from-dir\n")
    config = config_file(tmp_path, "credentials:\n  sis: from-file\n")
    assert load_settings(config).credential("sis").get_secret_value() == "from-file"


def test_directory_file_is_used_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A credential found nowhere else is read from $CREDENTIALS_DIRECTORY/NAME."""
    credentials_dir(tmp_path, monkeypatch, sis="from-dir\n")
    assert load_settings().credential("sis").get_secret_value() == "from-dir"


@pytest.mark.parametrize(
    ("content", "secret"),
    [("s3cret\n", "s3cret"), ("s3cret\r\n", "s3cret"), ("  pass word \n", "  pass word ")],
    ids=["newline", "crlf", "spaces-kept"],
)
def test_only_the_trailing_newline_is_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, secret: str
) -> None:
    """A credential file loses its line ending and nothing else."""
    credentials_dir(tmp_path, monkeypatch, sis=content)
    assert load_settings().credential("sis").get_secret_value() == secret


def test_credentials_dir_can_come_from_the_config_file(tmp_path: Path) -> None:
    """credentials_dir in the config file is used when $CREDENTIALS_DIRECTORY is not set."""
    folder = tmp_path / "creds"
    folder.mkdir()
    (folder / "sis").write_text("from-configured-dir\n", encoding="utf-8")
    config = config_file(tmp_path, f"credentials_dir: {folder}\n")
    assert load_settings(config).credential("sis").get_secret_value() == "from-configured-dir"


def test_sweeper_config_variable_names_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --config, $SWEEPER_CONFIG names the config file."""
    monkeypatch.setenv("SWEEPER_CONFIG", str(config_file(tmp_path, "credentials: {sis: x1}\n")))
    assert load_settings().credential("sis").get_secret_value() == "x1"


def test_credential_name_with_capitals_is_found_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A RoPA credential named 'SisDb' is found in SWEEPER_CREDENTIALS__SISDB, as the error
    message tells the user to set it."""
    monkeypatch.setenv("SWEEPER_CREDENTIALS__SISDB", "from-env")
    assert load_settings().credential("SisDb").get_secret_value() == "from-env"


# -- missing credentials -----------------------------------------------------------------


def test_missing_credential_lists_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error names the variable, the config file and the directory file it tried."""
    folder = credentials_dir(tmp_path, monkeypatch)
    with pytest.raises(CredentialMissing) as info:
        load_settings().credential("ldap")
    message = str(info.value)
    assert "SWEEPER_CREDENTIALS__LDAP" in message
    assert "credentials in the config file" in message
    assert str(folder / "ldap") in message
    assert info.value.exit_code == 2


def test_missing_credential_says_the_directory_is_not_set() -> None:
    """Without $CREDENTIALS_DIRECTORY the error says so rather than naming a path."""
    with pytest.raises(CredentialMissing, match=r"\$CREDENTIALS_DIRECTORY \(not set\)"):
        load_settings().credential("ldap")


def test_missing_credential_never_shows_another_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other credentials from every source stay out of the message."""
    env_secret, file_secret, dir_secret = OTHER_SECRETS
    monkeypatch.setenv("SWEEPER_CREDENTIALS__LDAP", env_secret)
    credentials_dir(tmp_path, monkeypatch, state=dir_secret + "\n")
    config = config_file(tmp_path, f"credentials:\n  s3: {file_secret}\n")
    with pytest.raises(CredentialMissing) as info:
        load_settings(config).credential("sis")
    assert not [s for s in OTHER_SECRETS if s in str(info.value)]


def test_unreadable_credential_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential path that cannot be read is a CredentialMissing naming the path."""
    folder = credentials_dir(tmp_path, monkeypatch)
    (folder / "sis").mkdir()
    with pytest.raises(CredentialMissing, match="cannot read") as info:
        load_settings().credential("sis")
    assert str(folder / "sis") in str(info.value)


# -- invalid settings --------------------------------------------------------------------


def test_unknown_setting_in_config_file_names_file_and_field(tmp_path: Path) -> None:
    """A misspelt setting is refused, naming the file, the field and the real settings."""
    config = config_file(tmp_path, "scan_batch_sise: 500\n")
    with pytest.raises(SettingsInvalid) as info:
        load_settings(config)
    [problem] = info.value.problems
    assert (problem.file, problem.path) == (str(config), "scan_batch_sise")
    assert "unknown setting" in problem.message
    assert "scan_batch_size" in problem.message


def test_invalid_value_in_config_file_names_the_file(tmp_path: Path) -> None:
    """A value out of range in the config file is reported against that file."""
    config = config_file(tmp_path, "scan_batch_size: 0\n")
    with pytest.raises(SettingsInvalid) as info:
        load_settings(config)
    [problem] = info.value.problems
    assert (problem.file, problem.path) == (str(config), "scan_batch_size")
    assert "greater than or equal to 1" in problem.message


def test_invalid_value_from_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value from the environment names the variable, not the config file."""
    monkeypatch.setenv("SWEEPER_SCAN_BATCH_SIZE", "many")
    with pytest.raises(SettingsInvalid) as info:
        load_settings(config_file(tmp_path, "state_url: sqlite:///x.db\n"))
    [problem] = info.value.problems
    assert (problem.file, problem.path) == ("SWEEPER_SCAN_BATCH_SIZE", "scan_batch_size")


def test_invalid_credential_value_is_not_echoed(tmp_path: Path) -> None:
    """A credential of the wrong shape is refused without repeating what was written."""
    config = config_file(tmp_path, "credentials:\n  sis: [half-a-secret, other-half]\n")
    with pytest.raises(SettingsInvalid) as info:
        load_settings(config)
    assert info.value.problems[0].path.startswith("credentials.sis")
    assert "half-a-secret" not in str(info.value)


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    """--config naming a file that does not exist is refused, naming it."""
    with pytest.raises(SettingsInvalid, match="no such config file") as info:
        load_settings(tmp_path / "nope.yaml")
    assert info.value.problems[0].file == str(tmp_path / "nope.yaml")


# -- secrets are never printed -----------------------------------------------------------


def test_secrets_are_masked_in_repr_and_dumps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """repr, str and a JSON dump of the settings show no credential value."""
    monkeypatch.setenv("SWEEPER_CREDENTIALS__LDAP", "env-secret-for-ldap")
    settings = load_settings(config_file(tmp_path, "credentials:\n  s3: file-secret-for-s3\n"))
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(settings.credentials)]
    assert settings.credential("s3").get_secret_value() == "file-secret-for-s3"
    assert not [s for s in OTHER_SECRETS[:2] for text in shown if s in text]
    assert "**********" in repr(settings.credential("ldap"))
