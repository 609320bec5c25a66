"""Vendor personas: each emulated vendor's engine and defects, from a TOML file, over HTTP."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemkit.analyze.sdr import sdr
from stemkit.audio import load_audio
from stemkit.cli import app
from stemkit.dsp import engine
from stemkit.errors import JobFailed
from stemkit.providers import connect
from stemkit.sandbox import SandboxConfig, SandboxServer
from stemkit.sandbox.personas import DEMO_CONFIG, ConfigError, load_config
from tests.test_faults import SECRETS, env_for


@contextlib.contextmanager
def persona_sandbox(tmp_path, text: str):
    path = tmp_path / "sandbox.toml"
    path.write_text(text)
    config = SandboxConfig.from_file(
        path,
        tmp_path / "sandbox",
        workers=2,
        sourceress_users={"chaos-user": SECRETS["password"]},
        audioshake_tokens={SECRETS["token"]: "chaos"},
        audioshake_api_keys={SECRETS["api_key"]: "chaos"},
        loom_keys={SECRETS["key"]: SECRETS["secret"]},
    )
    with SandboxServer(config, set_env=False) as server:
        yield server


@pytest.fixture()
def use_env(monkeypatch):
    def apply(server):
        for k, v in env_for(server).items():
            monkeypatch.setenv(k, v)

    return apply


def _stems(result) -> dict[str, np.ndarray]:
    return {name: load_audio(path)[0] for name, path in result.stems.items()}


# --------------------------------------------------------------------------- the file


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[vendors.audioshake]\nengin = "dsp"\n', "vendors.audioshake.engin"),
        ('[vendors.audioshake]\nengine = "neural"\n', "vendors.audioshake.engine"),
        ("[vendors.audioshake.defects]\ngian_db = -3\n", "vendors.audioshake.defects.gian_db"),
        ("[vendors.audioshake.defects]\ngain_db = 'loud'\n", "vendors.audioshake.defects.gain_db"),
        ('[vendors.audioshake.defects]\ncodec = "aac-64"\n', "vendors.audioshake.defects.codec"),
        ("[vendors.audioshake.defects]\ndropout_s = [5, 4]\n", "defects.dropout_s"),
        ("[vendors.acme]\n", "vendors.acme"),
        ('[vendors.loom.defects]\ninvert = ["vocals"]\n', "vendors.loom.defects: invert"),
        ('[vendors.loom]\nengine = "dsp-fine"\n', "vendors.loom"),
        ('[vendors.sourceress]\nengine = "reference"\n', "needs `references`"),
        ('[vendors.sourceress]\nengine = "reference"\nreferences = "nowhere"\n', "references"),
        ("[faults]\nerror_500 = 0.1\n", "faults.error_500"),
        ("[vendors\n", "not valid TOML"),
    ],
)
def test_a_bad_config_fails_at_start_naming_the_key(tmp_path, text, named):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[")):
        load_config(path)


def test_serve_refuses_a_bad_config_before_listening(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[vendors.audioshake.defects]\ngian_db = -3\n")
    for args in (
        ["serve", "--port", "1", "--config", str(path)],
        ["batch", str(tmp_path), "--out", str(tmp_path / "b"), "--sandbox-config", str(path)],
    ):
        run = CliRunner().invoke(app, args)
        assert run.exit_code == 1, run.output
        assert "vendors.audioshake.defects.gian_db" in run.output
        assert run.exception is None or isinstance(run.exception, SystemExit)


def test_the_demo_personas_set_two_vendors_apart():
    demo = load_config(DEMO_CONFIG)
    a, b = demo.persona("sourceress"), demo.persona("audioshake")
    assert (a.engine, a.defects.active) != (b.engine, b.defects.active)
    assert b.defects.active


# --------------------------------------------------------------------------- over HTTP


def test_engines_and_defects_reach_the_stems(tmp_path, track_dir, use_env):
    """sourceress runs dsp-fine; audioshake runs dsp with vocals 6 dB down and inverted."""
    text = """
[vendors.sourceress]
engine = "dsp-fine"
[vendors.audioshake.defects]
gain_db = -6
invert = ["vocals"]
stems = ["vocals"]
"""
    mix_path = track_dir / "alpha" / "mixture.wav"
    mix, sr = load_audio(mix_path)
    with persona_sandbox(tmp_path, text) as server:
        use_env(server)
        fine = _stems(connect("sourceress").separate(mix_path, tmp_path / "s", track="alpha"))
        shaken = _stems(
            connect("audioshake").separate(
                mix_path, tmp_path / "a", track="alpha", stems=["vocals", "drums"]
            )
        )
        assert server.personas()["sourceress"] == {
            "engine": "dsp-fine",
            "defects": {},
            "known_answer": False,
        }
    clean = engine.separate(mix, sr, ["vocals", "drums"])
    expected_fine = engine.separate(mix, sr, ["vocals", "accompaniment"], engine="dsp-fine")
    np.testing.assert_allclose(fine["vocals"], expected_fine["vocals"], atol=2e-4)
    assert not np.allclose(fine["vocals"], clean["vocals"], atol=1e-3)
    np.testing.assert_allclose(shaken["vocals"], -0.5012 * clean["vocals"], atol=2e-4)
    np.testing.assert_allclose(shaken["drums"], clean["drums"], atol=2e-4)  # not in `stems`


@pytest.mark.parametrize("provider", ["sourceress", "audioshake"])
def test_the_known_answer_vendor_hits_its_nsdr(tmp_path, track_dir, use_env, provider):
    text = f"""
[vendors.{provider}]
engine = "reference"
references = "{track_dir}"
[vendors.{provider}.defects]
bleed_db = -10
"""
    mix_path = track_dir / "beta" / "mixture.wav"
    with persona_sandbox(tmp_path, text) as server:
        use_env(server)
        stems = ["vocals", "drums", "bass", "other"] if provider == "audioshake" else None
        got = _stems(connect(provider).separate(mix_path, tmp_path / "o", track="b", stems=stems))
        assert server.personas()[provider]["known_answer"]
    for name, y in got.items():
        parts = ["drums", "bass", "other"] if name == "accompaniment" else [name]
        ref = sum(load_audio(track_dir / "beta" / f"{p}.wav")[0] for p in parts)
        assert sdr(ref, y) == pytest.approx(10.0, abs=0.05), name


@pytest.mark.parametrize("provider", ["sourceress", "audioshake"])
def test_known_answer_without_the_mixture_fails_the_job_as_documented(
    tmp_path, track_dir, use_env, provider
):
    text = f'[vendors.{provider}]\nengine = "reference"\nreferences = "{track_dir}"\n'
    (tmp_path / "odd").mkdir()
    y, sr = load_audio(track_dir / "alpha" / "mixture.wav")
    sf.write(tmp_path / "odd" / "mixture.wav", (0.5 * y).T, sr)
    with persona_sandbox(tmp_path, text) as server:
        use_env(server)
        with pytest.raises(JobFailed, match="no reference for this mixture"):
            connect(provider).separate(tmp_path / "odd" / "mixture.wav", tmp_path / "o", track="o")
        assert server.stats()["duplicates"] == 0  # the server is fine: no bug, no 500


def test_the_tasks_api_runs_audioshakes_persona(tmp_path, track_dir, use_env):
    """AudioShake's two APIs are one vendor: the Tasks API gets its defects too."""
    text = "[vendors.audioshake.defects]\ngain_db = -6\n"
    mix_path = track_dir / "alpha" / "mixture.wav"
    mix, sr = load_audio(mix_path)
    with persona_sandbox(tmp_path, text) as server:
        use_env(server)
        got = _stems(
            connect("audioshake-tasks").separate(
                mix_path, tmp_path / "t", track="alpha", stems=["vocals"]
            )
        )
        described = server.personas()
    assert described["audioshake-tasks"] == described["audioshake"]
    assert described["audioshake"]["defects"] == {"gain_db": -6.0}
    clean = engine.separate(mix, sr, ["vocals"])["vocals"]
    np.testing.assert_allclose(got["vocals"], 0.5012 * clean, atol=2e-4)
