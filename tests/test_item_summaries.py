"""The item index keeps a summary per item (what listings, searches and lookups by name or URL
read), never a secret field's value; whole items are decrypted on demand, and only the last few
are kept."""

from helpers import make_replicas
from vaultpeer.core.item import ItemContent
from vaultpeer.service.commands import VaultCommands
from vaultpeer.service.vault import items as items_module


def test_the_index_holds_no_secret_and_whole_items_are_decrypted_on_demand_within_a_bound(tmp_path):
    (vault,) = make_replicas(1)
    count = items_module._CACHED_VIEWS + 50
    vault.add_many(ItemContent.build(f"Site {n:04d}", {"username": f"user{n}", "url": f"https://s{n}.example.org",
                                                       "url 2": f"https://alt{n}.org",
                                                       "password": f"hunter-{n}-secret", "notes": f"note {n}"})
                   for n in range(count))
    vault.items.forget_index()
    summaries = vault.summaries()
    assert len(summaries) == count and not vault.items._views  # listing decrypted nothing to keep
    for summary in summaries[:20]:
        held = [getattr(summary, name) for name in summary.__slots__] + list(summary.searchable.__slots__)
        text = repr(held) + repr([getattr(summary.searchable, n) for n in summary.searchable.__slots__])
        assert "hunter-" not in text and "note " not in text
    first = summaries[0]
    assert (first.title, first.searchable.username, first.urls) == (
        "Site 0000", "user0", ("https://s0.example.org", "https://alt0.org"))

    for summary in summaries:  # every item read whole once: the cache stays bounded
        assert vault.view(summary.id).content.field("password").value.startswith("hunter-")
    assert len(vault.items._views) == items_module._CACHED_VIEWS

    # an edit is seen at once, by the index and the whole item
    vault.edit(str(first.id), {"password": "changed", "username": "renamed"})
    assert vault.find_summary(str(first.id)).searchable.username == "renamed"
    assert vault.get(str(first.id)).content.field("password").value == "changed"

    commands = VaultCommands(vault, None)
    assert [entry["title"] for entry in commands.search("site 0001")][:1] == ["Site 0001"]
    assert [entry["title"] for entry in commands.search_url("https://alt7.org/login")] == ["Site 0007"]
    assert len(commands.list_items()) == count
