"""The D-Bus interfaces vaultpeer's Secret Service serves: one table, read by the dispatcher (each
method's argument signature is checked against it before the method runs) and by Introspect."""

from xml.sax.saxutils import quoteattr

SERVICE = "org.freedesktop.Secret.Service"
COLLECTION = "org.freedesktop.Secret.Collection"
ITEM = "org.freedesktop.Secret.Item"
SESSION = "org.freedesktop.Secret.Session"
PROMPT = "org.freedesktop.Secret.Prompt"
PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PEER = "org.freedesktop.DBus.Peer"


class Interface:
    def __init__(self, name: str, methods: dict[str, tuple[str, str]],
                 properties: dict[str, tuple[str, bool]] | None = None, signals: dict[str, str] | None = None):
        self.name = name
        #: method name -> (in signature, out signature)
        self.methods = methods
        #: property name -> (type, writable)
        self.properties = properties or {}
        #: signal name -> signature
        self.signals = signals or {}


STANDARD = (
    Interface(PROPERTIES, {"Get": ("ss", "v"), "Set": ("ssv", ""), "GetAll": ("s", "a{sv}")},
              signals={"PropertiesChanged": "sa{sv}as"}),
    Interface(INTROSPECTABLE, {"Introspect": ("", "s")}),
    Interface(PEER, {"Ping": ("", ""), "GetMachineId": ("", "s")}),
)

SECRET = "(oayays)"

INTERFACES = {
    "service": (Interface(SERVICE, {
        "OpenSession": ("sv", "vo"), "CreateCollection": ("a{sv}s", "oo"), "SearchItems": ("a{ss}", "aoao"),
        "Unlock": ("ao", "aoo"), "Lock": ("ao", "aoo"), "LockService": ("", ""), "ChangeLock": ("o", "o"),
        "GetSecrets": ("aoo", "a{o" + SECRET + "}"), "ReadAlias": ("s", "o"), "SetAlias": ("so", ""),
    }, {"Collections": ("ao", False)},
        {"CollectionCreated": "o", "CollectionDeleted": "o", "CollectionChanged": "o"}),),
    "collection": (Interface(COLLECTION, {
        "Delete": ("", "o"), "SearchItems": ("a{ss}", "ao"), "CreateItem": ("a{sv}" + SECRET + "b", "oo"),
    }, {"Items": ("ao", False), "Label": ("s", True), "Locked": ("b", False), "Created": ("t", False),
        "Modified": ("t", False)},
        {"ItemCreated": "o", "ItemDeleted": "o", "ItemChanged": "o"}),),
    "item": (Interface(ITEM, {
        "Delete": ("", "o"), "GetSecret": ("o", SECRET), "SetSecret": (SECRET, ""),
    }, {"Locked": ("b", False), "Attributes": ("a{ss}", True), "Label": ("s", True), "Type": ("s", False),
        "Created": ("t", False), "Modified": ("t", False)}),),
    "session": (Interface(SESSION, {"Close": ("", "")}),),
    "prompt": (Interface(PROMPT, {"Prompt": ("s", ""), "Dismiss": ("", "")}, signals={"Completed": "bv"}),),
    "node": (),
}


def split_signature(signature: str) -> list[str]:
    """The complete types of a signature, one by one ("a{sv}s" -> ["a{sv}", "s"])."""
    types, start, depth = [], 0, 0
    for index, char in enumerate(signature):
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        if depth == 0 and char != "a":
            types.append(signature[start:index + 1])
            start = index + 1
    return types


def introspect(kind: str, children: list[str]) -> str:
    """The introspection XML of an object of ``kind`` with these child nodes."""
    lines = ['<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"',
             ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">', "<node>"]
    for interface in (*STANDARD, *INTERFACES[kind]):
        lines.append(f"  <interface name={quoteattr(interface.name)}>")
        for name, (arguments, results) in interface.methods.items():
            lines.append(f"    <method name={quoteattr(name)}>")
            lines += [f'      <arg type={quoteattr(t)} direction="in"/>' for t in split_signature(arguments)]
            lines += [f'      <arg type={quoteattr(t)} direction="out"/>' for t in split_signature(results)]
            lines.append("    </method>")
        for name, (kind_of, writable) in interface.properties.items():
            access = "readwrite" if writable else "read"
            lines.append(f"    <property name={quoteattr(name)} type={quoteattr(kind_of)} access=\"{access}\"/>")
        for name, signature in interface.signals.items():
            lines.append(f"    <signal name={quoteattr(name)}>")
            lines += [f"      <arg type={quoteattr(t)}/>" for t in split_signature(signature)]
            lines.append("    </signal>")
        lines.append("  </interface>")
    lines += [f"  <node name={quoteattr(child)}/>" for child in children]
    lines.append("</node>")
    return "\n".join(lines) + "\n"
