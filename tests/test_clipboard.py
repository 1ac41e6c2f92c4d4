"""Which clipboard `vaultpeer copy` picks, and the clear error it gives when there is none."""

import pytest

from vaultpeer.clipboard import NoClipboard, detect


def tools(*names):
    return lambda name: f"/usr/bin/{name}" if name in names else None


def test_wayland_first_then_xclip_then_xsel():
    both = {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}
    assert detect(both, tools("wl-copy", "wl-paste", "xclip"), "linux").name == "wayland"
    assert detect(both, tools("xclip", "xsel"), "linux").name == "xclip"  # XWayland, no wl-clipboard
    assert detect({"DISPLAY": ":0"}, tools("xsel"), "linux").name == "xsel"
    assert detect({}, tools("pbcopy", "pbpaste"), "darwin").name == "macos"


@pytest.mark.parametrize("environ, found, message", [
    ({}, tools("xclip", "wl-copy", "wl-paste"), "not a graphical session"),
    ({"DISPLAY": ":0"}, tools(), "install xclip or xsel"),
    ({"WAYLAND_DISPLAY": "wayland-0"}, tools("wl-copy"), "install wl-clipboard"),
])
def test_no_clipboard_is_one_line_with_a_hint(environ, found, message):
    with pytest.raises(NoClipboard) as caught:
        detect(environ, found, "linux")
    text = str(caught.value)
    assert message in text and "vaultpeer get ITEM --field NAME" in text and "\n" not in text

