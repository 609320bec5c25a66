"""Profiles come from defaults, TOML, .env and the environment; secrets never show."""

from __future__ import annotations

import pytest

from stemkit.config import load_profile
from stemkit.errors import ConfigError
from stemkit.http import redact


def test_default_profile_points_at_sandbox():
    p = load_profile("sourceress", environ={})
    assert p.name == "sandbox"
    assert p.base_url == "http://127.0.0.1:8765/sourceress"
    assert (p.username, p.password.get_secret_value()) == ("demo", "demo")
    assert load_profile("audioshake", environ={}).token.get_secret_value() == "demo-token"
    loom = load_profile("loom", environ={})
    assert (loom.key.get_secret_value(), loom.secret.get_secret_value()) == ("demo", "demo")


def test_sandbox_url_and_env_overrides():
    env = {
        "STEMKIT_SANDBOX_URL": "http://127.0.0.1:9999/",
        "STEMKIT_SOURCERESS_TIMEOUT": "7.5",
        "STEMKIT_SOURCERESS_PASSWORD": "from-env-password",
    }
    p = load_profile("sourceress", environ=env)
    assert p.base_url == "http://127.0.0.1:9999/sourceress"
    assert p.timeout == 7.5
    assert p.password.get_secret_value() == "from-env-password"
    assert "from-env-password" not in repr(p) and "from-env-password" not in str(p)


def test_toml_profile_and_selection(tmp_path):
    toml = tmp_path / "stemkit.toml"
    toml.write_text(
        '[profiles.prod.sourceress]\nbase_url = "https://api.example.test/"\n'
        'username = "qa@example.test"\npassword = "toml-password-123"\nmax_in_flight = 2\n'
    )
    env = {"STEMKIT_CONFIG": str(toml), "STEMKIT_PROFILE": "prod"}
    p = load_profile("sourceress", environ=env)
    assert (p.name, p.base_url, p.username, p.max_in_flight) == (
        "prod",
        "https://api.example.test",
        "qa@example.test",
        2,
    )
    # a registered secret is redacted from any text
    assert redact("login with toml-password-123 failed") == "login with *** failed"


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("STEMKIT_SOURCERESS_USERNAME=dotenv-user\n")
    monkeypatch.delenv("STEMKIT_SOURCERESS_USERNAME", raising=False)
    assert load_profile("sourceress").username == "dotenv-user"


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="profile 'nope' is not defined"):
        load_profile("sourceress", "nope", environ={})
    with pytest.raises(ConfigError, match="unknown provider"):
        load_profile("spotify", environ={})
    with pytest.raises(ConfigError, match="timeout"):
        load_profile("sourceress", environ={"STEMKIT_SOURCERESS_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="not a file"):
        load_profile("sourceress", environ={"STEMKIT_CONFIG": str(tmp_path / "none.toml")})


def test_redact_tokens_and_signatures():
    assert redact("Authorization: Bearer abcdefghijklmnop") == "Authorization: Bearer ***"
    assert redact("GET /x?expires=1&sig=deadbeef00") == "GET /x?expires=1&sig=***"
    assert redact('{"password": "pw", "user": "u"}') == '{"password": "***", "user": "u"}'
