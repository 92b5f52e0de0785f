"""The built package: every module and Hydra config inside the wheel, nothing machine-specific,
dependencies a library can carry, and the CRC that TFRecord framing relies on.

scripts/check_wheel.sh goes further: it installs the wheel into a fresh venv and runs the
commands from outside the checkout.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import google_crc32c
import pytest
from packaging.requirements import Requirement

from data_prep.tfrecord import masked_crc
from vidgen.cli.train import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """vidgen's wheel, built (through its sdist) as a release would be."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    return zipfile.ZipFile(next(out.glob("*.whl")))


def test_wheel_holds_every_package_of_the_checkout(wheel):
    names = set(wheel.namelist())
    expected = {
        p.relative_to(REPO).as_posix()
        for top in ("vidgen", "data_prep")
        for p in (REPO / top).glob("**/__init__.py")
    }
    assert expected and expected <= names


def test_wheel_holds_the_config_tree_but_no_local_settings(wheel):
    names = set(wheel.namelist())
    configs = {p.relative_to(REPO / "configs").as_posix() for p in REPO.glob("configs/**/*.yaml")}
    shared = {c for c in configs if not c.startswith("local/")}
    assert {"train.yaml", "rollout.yaml", "compare.yaml", "data/folder.yaml"} <= shared
    assert {f"vidgen/configs/{c}" for c in shared} <= names
    assert not [n for n in names if n.startswith("vidgen/configs/local/")]


def test_wheel_metadata_has_ranges_extras_and_an_spdx_licence(wheel):
    metadata_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    assert metadata["License-Expression"] == "MIT"
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    core = {r.name: r for r in requires if r.marker is None}
    pinned = [name for name, r in core.items() if any(s.operator == "==" for s in r.specifier)]
    assert not pinned, "exact pins belong in constraints.txt"
    assert not {"crc32c", "einops", "tqdm"} & core.keys()
    assert {"torch", "google-crc32c", "hydra-core"} <= core.keys()
    assert {"slurm", "tensorboard", "dev"} <= set(metadata.get_all("Provides-Extra"))


def test_configs_are_read_from_the_installed_package():
    import vidgen.configs

    assert Path(vidgen.configs.__file__).resolve().parent == CONFIG_DIR
    assert (CONFIG_DIR / "train.yaml").is_file() and (CONFIG_DIR / "data" / "folder.yaml").is_file()


def test_crc32c_is_castagnoli_and_masked_as_tensorflow_does():
    # CRC-32C check value of "123456789" (RFC 3720, B.4): 0xE3069283. TensorFlow's mask
    # rotates it right by 15 bits, 0x2507C60D, then adds 0xA282EAD8 modulo 2**32.
    assert google_crc32c.value(b"123456789") == 0xE3069283
    assert masked_crc(b"123456789") == 0xC78AB0E5
