import sys
import textwrap

import pytest

from detframe.errors import ConfigError
from detframe.registry import BACKBONES, Registry, import_modules


def make_registry():
    reg = Registry("thing")

    @reg.register()
    class Widget:
        def __init__(self, size: int, ratio: float = 1.0, name: str = "w", levels: list[int] | None = None):
            self.size, self.ratio, self.name, self.levels = size, ratio, name, levels

    return reg, Widget


def test_build_passes_arguments_and_parts():
    reg, widget = make_registry()
    w = reg.build({"type": "Widget", "size": 3, "ratio": 2}, name="part")
    assert isinstance(w, widget) and (w.size, w.ratio, w.name) == (3, 2, "part")


def test_unknown_type_suggests_and_lists():
    reg, _ = make_registry()
    with pytest.raises(ConfigError) as e:
        reg.build({"type": "Widgte", "size": 1})
    assert "Did you mean 'Widget'?" in str(e.value) and "Known thing types: Widget" in str(e.value)


def test_misspelt_argument_suggests_valid_names():
    reg, _ = make_registry()
    with pytest.raises(ConfigError) as e:
        reg.build({"type": "Widget", "size": 1, "raito": 2.0})
    msg = str(e.value)
    assert "'raito'" in msg and "Did you mean 'ratio'?" in msg and "levels, name, ratio, size" in msg


def test_wrong_type_and_missing_argument():
    reg, _ = make_registry()
    with pytest.raises(ConfigError, match=r"size: expected int, got 'big'"):
        reg.build({"type": "Widget", "size": "big"})
    with pytest.raises(ConfigError, match=r"levels: expected"):
        reg.build({"type": "Widget", "size": 1, "levels": [1, "x"]})
    with pytest.raises(ConfigError, match=r"needs 'size'"):
        reg.build({"type": "Widget"})
    assert reg.build({"type": "Widget", "size": 1, "ratio": 2}).ratio == 2  # int is a valid float


def test_duplicate_registration_is_an_error():
    reg, _ = make_registry()
    with pytest.raises(KeyError):
        reg.register("Widget")(object)


def test_user_package_registers_without_editing_detframe(tmp_path, monkeypatch):
    pkg = tmp_path / "my_project"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "backbones.py").write_text(textwrap.dedent("""
        from torch import nn
        from detframe.registry import BACKBONES

        @BACKBONES.register()
        class TinyNet(nn.Module):
            def __init__(self, channels: int = 8):
                super().__init__()
                self.conv = nn.Conv2d(3, channels, 3, stride=2, padding=1)
                self.out_channels = [channels]

            def forward(self, x):
                return [self.conv(x)]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import_modules(["my_project.backbones"])
    try:
        net = BACKBONES.build({"type": "TinyNet", "channels": 4})
        assert net.out_channels == [4]
    finally:
        BACKBONES._entries.pop("TinyNet", None)
        sys.modules.pop("my_project.backbones", None)
    with pytest.raises(ConfigError, match="cannot import 'my_project.nope'"):
        import_modules(["my_project.nope"])
