"""The registries: one name per entry, unknown names listed, lazy entries imported on first use and
a missing package named (repro.registry, repro.plugins)."""

from __future__ import annotations

import sys

import pytest

from repro import plugins
from repro.registry import PluginImportError, Registry


def test_duplicate_names_are_refused_eagerly_and_lazily():
    reg = Registry("widget")
    reg.register("a")(object())
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a")(object())
    reg.lazy("b", "json:dumps")
    for again in (lambda: reg.lazy("b", "json:loads"), lambda: reg.register("b")(object())):
        with pytest.raises(ValueError, match="widget 'b' is already registered"):
            again()


def test_unknown_names_list_the_registered_ones():
    reg = Registry("widget")
    reg.register("a")(1)
    reg.lazy("b", "json:dumps")
    with pytest.raises(KeyError, match="unknown widget 'c'; registered: a, b"):
        reg.get("c")
    with pytest.raises(KeyError, match="unknown widget 'c'"):
        reg.meta("c")
    assert "b" in reg and reg.names() == ["a", "b"] and list(reg) == ["a", "b"]


def test_a_lazy_entry_is_imported_on_first_get_and_keeps_its_meta():
    reg = Registry("widget")
    reg.lazy("dumps", "json:dumps", params=dict)
    assert reg.meta("dumps") == {"params": dict}
    import json

    assert reg.get("dumps") is json.dumps and reg.get("dumps") is json.dumps
    with pytest.raises(ValueError, match="not 'module:attribute'"):
        reg.lazy("bad", "json.dumps")


def test_a_lazy_entry_whose_package_is_missing_names_it(tmp_path, monkeypatch):
    (tmp_path / "needs_missing.py").write_text("import repro_no_such_package\nX = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("learner")
    reg.lazy("x", "needs_missing:X")  # registering costs nothing: the module is not imported
    assert "needs_missing" not in sys.modules
    with pytest.raises(PluginImportError, match="learner 'x' needs the package 'repro_no_such_package', "
                                                "which is not installed"):
        reg.get("x")


def test_a_deferred_module_is_imported_by_the_first_lookup_of_its_prefix(tmp_path, monkeypatch):
    mod = "repro_test_deferred_widgets"
    (tmp_path / f"{mod}.py").write_text(
        "import repro_test_widget_reg as r\n"
        "r.REG.register('toy/one')(1)\nr.REG.register('toy/two')(2)\n")
    (tmp_path / "repro_test_widget_reg.py").write_text("from repro.registry import Registry\nREG = Registry('widget')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import repro_test_widget_reg as r

    r.REG.register("other/x")(0)
    r.REG.defer("toy/", mod)
    assert r.REG.get("other/x") == 0 and mod not in sys.modules  # another prefix: not imported
    assert "toy/two" in r.REG and mod in sys.modules
    assert r.REG.get("toy/one") == 1 and r.REG.names() == ["other/x", "toy/one", "toy/two"]
    r.REG.defer("more/", "json")
    with pytest.raises(ValueError, match="'more/'\\* are already deferred to json"):
        r.REG.defer("more/", "pickle")


def test_study_plugins_do_not_import_their_figures():
    """A training job imports its study's plugin: the figures (pandas, plotting) stay unimported
    until a figure is looked up."""
    import subprocess

    code = ("import sys; from repro import plugins, registry; plugins.load_all(); "
            "assert 'pandas' not in sys.modules, 'pandas'; "
            "assert not [m for m in sys.modules if m.endswith('.figures') and m.startswith('repro.studies')]; "
            "registry.FIGURES.get('nrpr/main_table'); assert 'repro.studies.nrpr.figures' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plugin_loading_names_a_missing_module_or_package(tmp_path, monkeypatch):
    with pytest.raises(KeyError, match="plugin module 'repro_no_such_plugin' not found"):
        plugins.load(["repro_no_such_plugin"])
    (tmp_path / "plugin_needs_missing.py").write_text("import repro_no_such_package\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginImportError, match="plugin plugin_needs_missing needs the package "
                                                "'repro_no_such_package'"):
        plugins.load(["plugin_needs_missing"])
