"""The layer vocabulary: roles, proxies, frames, provenance (no viewer needed)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from napari_dewedge.core.layers import (
    LayerFrame,
    LayerRef,
    Provenance,
    Role,
    geometry_of,
    layer_source,
    role_of,
    same_layer,
    unwrap,
)
from napari_dewedge.core.wedge import WedgeGeometry


def _layer(**kw):
    base = dict(name="tomo", scale=(1.0, 2.0, 2.0), translate=(0.0, 5.0, -1.0), units=None, metadata={})
    base.update(kw)
    return SimpleNamespace(**base)


def test_roles_read_from_layers_and_metadata():
    assert role_of({"dewedge_role": "dewedged"}) is Role.DEWEDGED
    assert role_of(_layer(metadata={"dewedge_role": "ground_truth"})) is Role.GROUND_TRUTH
    assert role_of(_layer()) is None
    assert role_of({"dewedge_role": "something else"}) is None
    assert Role.PREVIEW == "preview" and str(Role.CORRUPTED) == "corrupted"


def test_proxies_are_seen_through():
    """napari hands plugin widgets proxies, new at every access: identity and weak
    references must hold on to the layer itself (a lost result came from this)."""
    wrapt = pytest.importorskip("wrapt")

    class Layer:
        name = "tomo"

    layer = Layer()
    proxy_a, proxy_b = wrapt.ObjectProxy(layer), wrapt.ObjectProxy(layer)
    assert proxy_a is not proxy_b and unwrap(proxy_a) is layer
    assert same_layer(proxy_a, proxy_b) and same_layer(layer, proxy_b)
    assert not same_layer(layer, Layer()) and not same_layer(layer, None)
    ref = LayerRef(wrapt.ObjectProxy(layer))  # the proxy itself dies at once
    assert ref() is layer
    assert ref.get([wrapt.ObjectProxy(Layer()), wrapt.ObjectProxy(layer)]) is layer
    assert ref.get([Layer()]) is None
    del layer, proxy_a, proxy_b
    assert ref() is None and ref.get([]) is None


def test_frame_voxel_size_rules():
    frame = LayerFrame.of(_layer(metadata={"voxel_size": (10.5, 10.5, 10.5)}, units=("nm", "nm", "nm")))
    assert frame.voxel_size == (10.5, 10.5, 10.5) and frame.isotropic_voxel_size == 10.5
    assert frame.units == ("nm", "nm", "nm")
    scale_only = LayerFrame.of(_layer())
    assert scale_only.voxel_size == (1.0, 2.0, 2.0)
    assert scale_only.isotropic_voxel_size is None  # anisotropic
    assert LayerFrame.of(_layer(scale=(1.0, 1.0, 1.0))).isotropic_voxel_size is None  # 1 means unknown
    assert LayerFrame.of(_layer(metadata={"voxel_size": "bad"})).voxel_size == (1.0, 2.0, 2.0)  # the scale
    four_d = LayerFrame.of(_layer(scale=(7.0, 1.0, 2.0, 2.0), translate=(9.0, 0.0, 5.0, -1.0)))
    assert four_d.scale == (1.0, 2.0, 2.0) and four_d.translate == (0.0, 5.0, -1.0)


def test_frame_places_a_crop():
    frame = LayerFrame.of(_layer(units=("angstrom",) * 3))
    kwargs = frame.layer_kwargs(offset_voxels=(2, 3, 4))
    assert kwargs["scale"] == (1.0, 2.0, 2.0)
    np.testing.assert_allclose(kwargs["translate"], (2.0, 11.0, 7.0))
    assert kwargs["units"] == ("angstrom",) * 3
    assert "units" not in LayerFrame.of(_layer()).layer_kwargs()


def test_geometry_and_source_of_a_layer():
    geometry = WedgeGeometry(-50, 62, "x")
    assert geometry_of(_layer(metadata={"wedge": geometry.to_dict()})) == geometry
    assert geometry_of(_layer(metadata={"wedge": {"tilt_min": "nonsense"}})) is None
    assert geometry_of(_layer()) is None
    assert layer_source(_layer(metadata={"path": "/data/a.mrc"})) == ("tomo", "/data/a.mrc")
    assert layer_source(_layer(metadata={"source_path": "/data/b.mrc"})) == ("tomo", "/data/b.mrc")
    assert layer_source(_layer()) == ("tomo", None)


def test_result_metadata_keeps_ground_truth_link_and_leaves_source_alone():
    geometry = WedgeGeometry(-45, 60, "x")
    source_meta = {"dewedge_role": "corrupted", "ground_truth_layer": "truth", "voxel_size": (3.0, 3.0, 3.0),
                   "path": "/data/tomo.mrc", "header": {"nx": 5}}
    before = copy.deepcopy(source_meta)
    record = Provenance.of_result("tomo", "/data/tomo.mrc", geometry, model_path=None, inference={"samples": 3})
    meta = record.layer_metadata(source_meta)
    assert source_meta == before
    assert meta["dewedge_role"] == "dewedged" and meta["source_role"] == "corrupted"
    assert meta["ground_truth_layer"] == "truth" and meta["voxel_size"] == (3.0, 3.0, 3.0)
    assert WedgeGeometry.from_dict(meta["wedge"]) == geometry
    assert meta["provenance"]["model"] == "in memory" and meta["provenance"]["inference"] == {"samples": 3}
    assert meta["source_path"] == "/data/tomo.mrc" and "path" not in meta  # saving never targets the source


def test_provenance_renders_as_metadata_and_as_the_mrc_label():
    record = Provenance.of_result("tomo", "/data/run1/tomo.mrc", WedgeGeometry(-60, 60), model_path="/m/model.pt")
    meta = record.layer_metadata({})
    assert Provenance.label("tomo dewedged", meta) == "tomo dewedged napari-dewedge from tomo"
    umeta = record.with_role(Role.UNCERTAINTY).layer_metadata({})
    assert umeta["dewedge_role"] == "uncertainty"
    assert "uncertainty" in umeta["provenance"]["summary"] and umeta["provenance"]["model"] == "/m/model.pt"
    assert Provenance.protected_paths(meta) == ["/data/run1/tomo.mrc", "/data/run1/tomo.mrc"]
    assert Provenance.label(None, {}) is None
