"""The napari manifest is valid and every contribution resolves."""

from __future__ import annotations

import importlib
from pathlib import Path

import npe2
import pytest

import napari_dewedge

MANIFEST = Path(napari_dewedge.__file__).with_name("napari.yaml")


@pytest.fixture(scope="module")
def manifest() -> npe2.PluginManifest:
    return npe2.PluginManifest.from_file(MANIFEST)


def test_manifest_validates(manifest):
    assert manifest.name == "napari-dewedge"
    assert {r.command for r in manifest.contributions.readers} == {"napari-dewedge.get_reader"}
    assert {w.command for w in manifest.contributions.writers} == {"napari-dewedge.write_mrc"}


def test_every_command_resolves(manifest):
    for command in manifest.contributions.commands:
        module_name, _, attr = command.python_name.partition(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attr)), command.python_name


def test_plugin_is_discoverable():
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert pm.get_manifest("napari-dewedge").name == "napari-dewedge"  # found via its entry point


def test_sample_data_opens_in_napari(viewer):
    viewer.open_sample("napari-dewedge", "prism")
    names = [layer.name for layer in viewer.layers]
    assert names == ["prism (wedge + noise)", "prism (ground truth)"]
    assert viewer.layers[0].metadata["dewedge_role"] == "corrupted"
