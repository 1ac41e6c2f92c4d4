"""Lookup by URL (core/urlmatch.py) against the real public suffix list vaultpeer ships."""

import pytest

from vaultpeer.core.errors import InvalidInput
from vaultpeer.core.urlmatch import MAX_URL_LENGTH, parse_site_url, search_by_url
from vaultpeer.service.public_suffixes import registrable_domain


def found(page: str, *items: tuple[str, str | list[str]]) -> list[str]:
    """The titles of the items (title, url or urls) that match ``page``, best first."""
    entries = [(title, title, [urls] if isinstance(urls, str) else urls) for title, urls in items]
    return search_by_url(page, entries, registrable_domain)


def test_the_same_host_ranks_before_the_same_registrable_domain():
    assert found("https://login.example.com/signin",
                 ("Apex", "https://example.com"), ("Login", "https://login.example.com"),
                 ("Mail", "https://mail.example.com"), ("Other", "https://example.org")) == ["Login", "Apex", "Mail"]


def test_two_level_public_suffixes_are_not_a_site():
    assert found("https://www.bbc.co.uk/", ("BBC", "https://account.bbc.co.uk"),
                 ("Other UK", "https://shop.co.uk"), ("Suffix", "https://co.uk")) == ["BBC"]
    assert registrable_domain("login.example.co.uk") == "example.co.uk"
    assert found("https://co.uk/", ("Suffix", "https://co.uk"), ("Shop", "https://shop.co.uk")) == ["Suffix"]


def test_private_suffixes_like_github_io_keep_people_apart():
    items = (("Alice", "https://alice.github.io"), ("Bob", "https://bob.github.io"),
             ("GitHub", "https://github.com"), ("Pages", "https://github.io"))
    assert found("https://alice.github.io/blog", *items) == ["Alice"]
    assert found("https://docs.alice.github.io/", *items) == ["Alice"]
    assert found("https://github.io/", *items) == ["Pages"]


def test_ip_addresses_localhost_and_single_labels_match_only_themselves():
    items = (("Router", "http://192.168.1.1"), ("Other IP", "http://192.168.1.2"),
             ("Dev", "http://localhost:8080"), ("Sub", "http://app.localhost:8080"),
             ("NAS", "https://nas"), ("NAS2", "https://nas2"), ("V6", "http://[::1]:8080"))
    assert found("http://192.168.1.1/admin", *items) == ["Router"]
    assert found("http://localhost:8080/", *items) == ["Dev"]
    assert found("http://app.localhost:8080/", *items) == ["Sub"]
    assert found("https://nas/", *items) == ["NAS"]
    assert found("http://[0:0::1]:8080/x", *items) == ["V6"]  # IPv6 compared in one form
    # a name ending in a number is read as an address by browsers: only itself
    assert found("http://10.1/", ("A", "http://2.10.1"), ("B", "http://10.1")) == ["B"]


def test_ports_must_agree_with_the_schemes_default_counting_as_given():
    items = (("Default", "https://example.com"), ("Explicit", "https://example.com:443"),
             ("Other port", "https://example.com:8443"))
    assert found("https://example.com:443/", *items) == ["Default", "Explicit"]
    assert found("https://example.com:8443/", *items) == ["Other port"]


def test_http_items_are_offered_on_https_pages_but_never_the_reverse():
    items = (("Secure", "https://example.com"), ("Plain", "http://example.com"))
    assert found("https://example.com/", *items) == ["Secure", "Plain"]  # the same scheme first
    assert found("http://example.com/", *items) == ["Plain"]
    assert found("https://example.com:8080/", ("Plain 8080", "http://example.com:8080")) == ["Plain 8080"]
    assert found("ftp://example.com/", *items, ("FTP", "ftp://example.com")) == ["FTP"]


def test_an_item_url_without_a_scheme_is_https():
    assert found("https://github.com/login", ("Bare", "github.com")) == ["Bare"]
    assert found("http://github.com/login", ("Bare", "github.com")) == []


def test_paths_rank_within_a_host():
    items = (("Admin", "https://example.com/admin"), ("Root", "https://example.com/"),
             ("Login", "https://example.com/login"), ("Log", "https://example.com/log"))
    assert found("https://example.com/login/step2?next=/admin", *items) == ["Login", "Root", "Admin", "Log"]


def test_idn_hosts_compare_as_punycode_in_any_case():
    assert found("https://xn--bcher-kva.de/", ("Books", "https://Bücher.DE/")) == ["Books"]
    assert found("https://shop.bücher.de/", ("Books", "https://www.xn--bcher-kva.de")) == ["Books"]
    assert found("https://EXAMPLE.com./", ("Ex", "example.COM")) == ["Ex"]
    assert found("https://ＧｉｔＨｕｂ.com/", ("GitHub", "github.com")) == ["GitHub"]


def test_userinfo_is_ignored_and_the_host_is_what_follows_the_last_at():
    assert found("https://user:hunter2@example.com/", ("Ex", "https://example.com")) == ["Ex"]
    assert found("https://example.com@evil.example/", ("Ex", "https://example.com")) == []
    assert found("https://evil.example/", ("Ex", "https://me@example.com")) == []


def test_every_url_of_an_item_counts_and_bad_item_urls_match_nothing():
    assert found("https://shop.example.org/", ("Two", ["https://example.com", "https://example.org"]),
                 ("Junk", ["::::", "http://", "https://a b.com", "mailto:x"])) == ["Two"]


@pytest.mark.parametrize("page, problem", [
    ("", "empty"), ("   ", "empty"), ("https://", "no valid host"), ("not a url", "no valid host"),
    ("https://exa mple.com", "no valid host"), ("file:///etc/passwd", "no valid host"),
    ("https://example.com\x00.evil", "control character"), ("https://exam\nple.com", "control character"),
    ("https://example.com:99999/", "port"), ("https://example.com:http/", "port"),
    ("https://" + "a" * 64 + ".com", "no valid host"), ("https://[::1/", "no valid host"),
    ("https://" + "a." * 200 + "com", "no valid host"), ("javascript:alert(1)", "port"),
])
def test_garbage_is_refused_with_a_message_that_never_quotes_it(page, problem):
    with pytest.raises(InvalidInput) as caught:
        parse_site_url(page)
    assert problem in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_url_of_a_megabyte_is_refused_before_it_is_read():
    with pytest.raises(InvalidInput, match=f"longer than {MAX_URL_LENGTH}"):
        parse_site_url("https://example.com/" + "a" * 1_000_000)
    with pytest.raises(InvalidInput) as caught:
        parse_site_url("https://user:hunter2@exa mple.com/")
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(caught.value)


def test_a_parsed_url_shows_nothing_in_its_repr():
    assert "example" not in repr(parse_site_url("https://example.com/secret-path"))
