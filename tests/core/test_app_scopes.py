"""Issue 18: app scopes and tokens (pure): what each scope reaches, and how a token is checked."""

import os

import pytest

from vaultpeer.core.app_scopes import (
    TOKEN_CHARS,
    Scope,
    Scopes,
    check_app_name,
    find_token,
    new_token,
    token_digest,
)
from vaultpeer.core.search import Searchable


def item(folder: str = "", tags: str = "") -> Searchable:
    return Searchable("t", folder=folder, tags=tags)


def test_scopes_parse_to_levels_and_limits_and_print_back():
    scopes = Scopes.parse(["read", "write:folder=Work/Sub", "read:tag=ci", "read"])
    assert scopes.texts() == ["read", "write:folder=Work/Sub", "read:tag=ci"]
    assert scopes.allows("write") and not scopes.allows("admin") and scopes.highest == "write"
    assert Scopes.parse(["admin"]).allows("read") and Scopes.parse(["admin"]).allows("write")


@pytest.mark.parametrize("bad", [[], "read", ["root"], ["read:folder"], ["read:folder="], ["read:owner=x"],
                                 ["admin:folder=Work"], ["read:folder=a\nb"], [1], ["read"] * 17,
                                 ["read:folder=" + "x" * 201]])
def test_malformed_scopes_are_refused(bad):
    with pytest.raises(ValueError):
        Scopes.parse(bad)


def test_a_folder_scope_takes_in_the_folder_and_its_subfolders_only():
    work = Scope.parse("read:folder=Work")
    assert work.covers(item("Work")) and work.covers(item("work/servers")) and work.covers(item("Work/"))
    assert not work.covers(item("Workshop")) and not work.covers(item("")) and not work.covers(item("Home/Work"))


def test_a_tag_scope_takes_in_items_with_that_tag():
    ci = Scope.parse("write:tag=CI")
    assert ci.covers(item(tags="team, ci")) and ci.covers(item(tags="ci;x"))
    assert not ci.covers(item(tags="cicd")) and not ci.covers(item())


def test_reach_is_the_union_of_the_scopes_and_writing_needs_a_write_scope():
    scopes = Scopes.parse(["read", "write:folder=Work"])
    assert scopes.visible(item("Home")) and not scopes.writable(item("Home")) and scopes.writable(item("Work"))
    assert not scopes.limited and scopes.limits_writes()
    limited = Scopes.parse(["read:folder=Work"])
    assert limited.limited and not limited.visible(item("Home")) and limited.limit_fields() == {"folder"}


def test_app_names_are_plain_words_and_not_the_clis():
    assert check_app_name("browser-host.2") == "browser-host.2"
    for bad in ("", "cli", "-x", "a b", "a\x1b", "x" * 65, "é", None):
        with pytest.raises(ValueError):
            check_app_name(bad)


def test_a_token_is_found_by_its_digest_and_every_other_string_is_none():
    token = new_token(os.urandom)
    other = new_token(os.urandom)
    assert len(token) == TOKEN_CHARS and token != other
    digests = [("a", token_digest(token)), ("b", token_digest(other))]
    assert find_token(token, digests) == "a" and find_token(other, digests) == "b"
    for bad in (token[:-1], token + "x", token.upper(), "", "x" * TOKEN_CHARS, token[:-1] + "\ud800"):
        assert find_token(bad, digests) is None
