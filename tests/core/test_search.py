"""Search: case-insensitive, every word must match, title matches first, stable order."""

from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.search import Searchable, fold, search, url_host

ITEMS = {
    "gh-work": Searchable("GitHub (work)", "alice@corp.example", "https://github.com/login", "Work", "dev, code"),
    "gh-home": Searchable("github", "alice", "github.com", "Personal"),
    "bank": Searchable("Bank", "alice", "https://www.mybank.example/online", "Finance", "money"),
    "mail": Searchable("Mail", "alice@mail.example", "imap.mail.example", "Personal/Mail"),
    "router": Searchable("Router admin", "admin", "http://192.168.1.1:8080/", "Home"),
}


def find(query: str) -> list[str]:
    return search(query, ITEMS.items())


def test_case_insensitive_and_exact_title_first():
    assert find("GITHUB")[:2] == ["gh-home", "gh-work"]


def test_username_url_host_folder_and_tags_are_searched():
    assert find("corp") == ["gh-work"]
    assert find("mybank.example") == ["bank"]
    assert find("mybank") == ["bank"]
    assert find("192.168.1.1") == ["router"]
    assert find("finance") == ["bank"]
    assert find("money") == ["bank"]
    assert set(find("personal")) == {"gh-home", "mail"}


def test_every_word_must_match_somewhere():
    assert find("github work") == ["gh-work"]
    assert find("github finance") == []


def test_secrets_are_not_searched():
    item = Searchable.from_fields("Secretive", [("password", "hunter2"), ("notes", "hunter2"), ("username", "bob")])
    assert search("hunter2", [("s", item)]) == []
    assert search("bob", [("s", item)]) == ["s"]


def test_an_empty_query_lists_everything_by_title():
    assert find("") == ["bank", "gh-home", "gh-work", "mail", "router"]


def test_folding_and_hosts():
    assert fold("ＧｉｔＨｕｂ") == "github"
    assert url_host("https://www.example.com:443/x") == "example.com"
    assert url_host("example.org/login") == "example.org"
    assert url_host("http://[::1") == ""  # malformed: no host, no crash


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12), st.text(max_size=12)), max_size=8),
       st.text(max_size=10))
def test_the_order_does_not_depend_on_the_input_order(rows, query):
    items = [(str(i), Searchable(title or "x", user, url)) for i, (title, user, url) in enumerate(rows)]
    assert search(query, items) == search(query, list(reversed(items)))
