"""Third-party methods register through the ``rainbench.methods`` entry point group.

A tiny distribution is "installed" into the test session: a package plus a ``*.dist-info`` folder
with ``METADATA`` and ``entry_points.txt`` on ``sys.path``, which is all ``importlib.metadata``
needs to see its entry points.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import baselines
from baselines.registry import clear_entry_point_cache, unregister

PLUGIN_MODULE = '''
from dataclasses import dataclass

from baselines import Method, MethodInfo, register


@register(MethodInfo(name="plugin-darken", kind="prior", paper="Plugin et al.", year=2025,
                     code_license="Apache-2.0", weights_license=None, learns_from="none",
                     needs_weights=False, devices=("cpu",), summary="Scales the image by a factor."))
class Darken(Method):
    @dataclass(frozen=True)
    class Config:
        factor: float = 0.5

    def _derain(self, batch):
        return batch * self.config.factor
'''

PLUGIN_CLASS_MODULE = '''
from baselines import Method, MethodInfo, register


@register(MethodInfo(name="plugin-invert", kind="prior", paper="Plugin et al.", year=None,
                     code_license="MIT", weights_license=None, learns_from="none",
                     needs_weights=False, summary="Inverts the image."))
class Invert(Method):
    def _derain(self, batch):
        return 1.0 - batch
'''

NAMES = ("plugin-darken", "plugin-invert")
MODULES = ("rb_plugin_darken", "rb_plugin_invert")


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    (tmp_path / "rb_plugin_darken").mkdir()
    (tmp_path / "rb_plugin_darken" / "__init__.py").write_text(PLUGIN_MODULE)
    (tmp_path / "rb_plugin_invert.py").write_text(PLUGIN_CLASS_MODULE)
    dist = tmp_path / "rb_plugin-0.1.dist-info"
    dist.mkdir()
    dist.joinpath("METADATA").write_text("Metadata-Version: 2.1\nName: rb-plugin\nVersion: 0.1\n")
    dist.joinpath("entry_points.txt").write_text(textwrap.dedent("""\
        [rainbench.methods]
        darken = rb_plugin_darken
        invert = rb_plugin_invert:Invert
        broken = rb_plugin_does_not_exist
        """))
    # the group name is the documented contract for plugin authors (docs/methods.md), spelled out here
    monkeypatch.syspath_prepend(str(tmp_path))
    clear_entry_point_cache()
    yield
    for name in NAMES:
        unregister(name)
    for module in MODULES:
        sys.modules.pop(module, None)
    clear_entry_point_cache()


def test_entry_point_methods_are_discovered_and_usable(installed_plugin):
    names = baselines.available()
    assert set(NAMES) <= set(names)
    assert {"identity", "guided", "gmm"} <= set(names)
    assert baselines.info("plugin-darken").code_license == "Apache-2.0"
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(baselines.create("plugin-darken", factor="0.25").derain(x), x * 0.25)
    assert torch.allclose(baselines.create("plugin-invert").derain(x), 1.0 - x)


def test_a_broken_plugin_is_reported_not_fatal(installed_plugin):
    assert "plugin-darken" in baselines.available()
    errors = baselines.load_errors()
    assert any("broken" in where and "rb_plugin_does_not_exist" in why for where, why in errors.items())
    with pytest.raises(baselines.MethodError, match="broken"):
        baselines.create("broken")


def test_entry_points_are_loaded_lazily(tmp_path, monkeypatch, installed_plugin):
    # Before any lookup, nothing of the plugin is imported.
    assert not any(module in sys.modules for module in MODULES)
    baselines.available()
    assert all(module in sys.modules for module in MODULES)


def test_without_the_plugin_its_names_are_unknown():
    clear_entry_point_cache()
    assert not set(NAMES) & set(baselines.available())
    with pytest.raises(baselines.MethodError, match="available"):
        baselines.create("plugin-darken")
