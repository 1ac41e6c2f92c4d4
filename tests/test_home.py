from pathlib import Path

import platformdirs

from vaultpeer.service.home import INSECURE_TEST_KDF_ENV, INSECURE_TEST_KDF_VALUE, insecure_test_kdf_enabled, resolve_home


def test_option_beats_environment_beats_platform_directory(tmp_path):
    env = {"VAULTPEER_HOME": str(tmp_path / "env")}
    assert resolve_home(tmp_path / "opt", env) == tmp_path / "opt"
    assert resolve_home(None, env) == tmp_path / "env"
    assert resolve_home(None, {}) == Path(platformdirs.user_data_dir("vaultpeer", appauthor=False))


def test_insecure_switch_needs_its_exact_value():
    assert not insecure_test_kdf_enabled({})
    assert not insecure_test_kdf_enabled({INSECURE_TEST_KDF_ENV: "1"})
    assert not insecure_test_kdf_enabled({INSECURE_TEST_KDF_ENV: "yes"})
    assert insecure_test_kdf_enabled({INSECURE_TEST_KDF_ENV: INSECURE_TEST_KDF_VALUE})
