import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core import encoding
from vaultpeer.core.errors import Ambiguous, IntegrityError, InvalidInput, NotFound
from vaultpeer.core.item import MAX_TIME, ItemContent, ItemId, resolve_reference


def test_build_marks_standard_secret_fields():
    content = ItemContent.build("Email", {"username": "alice", "password": "p", "totp": "JBSW", "pin": "1"})
    assert [(f.name, f.secret) for f in content.fields] == [
        ("username", False), ("password", True), ("totp", True), ("pin", False)
    ]


def test_edit_keeps_order_appends_new_fields_and_removes():
    content = ItemContent.build("Email", [("username", "a"), ("password", "p"), ("url", "u")])
    edited = content.edited({"password": "q", "pin": "1"}, remove=["url"], title="Mail")
    assert edited.title == "Mail"
    assert [(f.name, f.value) for f in edited.fields] == [("username", "a"), ("password", "q"), ("pin", "1")]
    assert edited.field("password").secret
    with pytest.raises(InvalidInput):
        content.edited(remove=["nope"])


@pytest.mark.parametrize("title,fields", [
    ("", {}), ("   ", {}), ("a\nb", {}), ("ok", [("", "v")]), ("ok", [("a", "1"), ("a", "2")]), ("x" * 1001, {}),
])
def test_invalid_content_is_rejected(title, fields):
    with pytest.raises(InvalidInput):
        ItemContent.build(title, fields)


@given(st.text(min_size=1, max_size=50).filter(lambda t: t.strip() and not set(t) & set("\x00\r\n")),
       st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda t: t.strip() and not set(t) & set("\x00\r\n")),
                       st.text(max_size=100), max_size=6))
def test_plaintext_round_trip(title, fields):
    content = ItemContent.build(title, fields)
    again = ItemContent.from_plaintext(content.to_plaintext())
    assert (again.title, again.fields) == (content.title, content.fields)


def test_malformed_plaintext_is_an_integrity_error():
    with pytest.raises(IntegrityError):
        ItemContent.from_plaintext(b"\xa0")


def test_a_time_travels_inside_the_plaintext_and_is_optional():
    content = ItemContent.build("Mail", {"password": "p"})
    stamped = content.at(1_764_000_000)
    assert encoding.decode(stamped.to_plaintext(), max_size=1024)["time"] == 1_764_000_000
    assert ItemContent.from_plaintext(stamped.to_plaintext()).time == 1_764_000_000
    # a revision written before times existed has no key: it reads, with no time
    assert "time" not in encoding.decode(content.to_plaintext(), max_size=1024)
    assert content.to_plaintext() == encoding.encode(
        {"title": "Mail", "fields": [["password", "p", True]]})
    assert ItemContent.from_plaintext(content.to_plaintext()).time is None
    # both ends of the range are kept as given
    for edge in (0, MAX_TIME):
        assert ItemContent.from_plaintext(content.at(edge).to_plaintext()).time == edge


def test_the_time_is_not_part_of_the_content():
    content = ItemContent.build("Mail", {"password": "p"})
    assert content.at(1) == content.at(2) == content
    assert hash(content.at(1)) == hash(content)
    assert content.at(5).edited({"password": "q"}).time is None  # an edit is stamped when sealed


@pytest.mark.parametrize("time", [-1, MAX_TIME + 1, 2**64 - 1, None, True, "1764000000", [1], 1.5])
def test_a_time_out_of_range_or_not_an_integer_is_an_integrity_error(time):
    data = encoding.encode({"title": "Mail", "fields": [], "time": time})  # (a float: the decoder refuses it)
    with pytest.raises(IntegrityError):
        ItemContent.from_plaintext(data)
    if type(time) is int:
        with pytest.raises(InvalidInput):
            ItemContent.build("Mail").at(time)


def test_reprs_reveal_no_content():
    content = ItemContent.build("Secret Title", {"username": "alice", "password": "hunter2"})
    text = repr(content) + repr(content.fields)
    for secret in ("Secret Title", "alice", "hunter2", "username"):
        assert secret not in text


def test_resolve_by_id_prefix_and_title():
    a, b = ItemId(bytes.fromhex("aaaaaa" + "00" * 13)), ItemId(bytes.fromhex("aaaaab" + "00" * 13))
    items = [(a, "Email"), (b, "Bank")]
    assert resolve_reference(str(a), items) == a
    assert resolve_reference("aaaaab", items) == b
    assert resolve_reference("Email", items) == a
    with pytest.raises(NotFound):
        resolve_reference("aaaa", items)  # too short to be a prefix
    assert resolve_reference(" EMAIL ", items) == a  # any case, when only one title folds alike
    with pytest.raises(NotFound):
        resolve_reference("mail", items)  # a name is a whole title (`search` finds parts)
    twin = ItemId(bytes.fromhex("aaaaaa" + "00" * 12 + "01"))
    with pytest.raises(Ambiguous) as caught:
        resolve_reference("aaaaaa", items + [(twin, "Other")])
    assert [c["title"] for c in caught.value.candidates] == ["Email", "Other"]
    with pytest.raises(Ambiguous) as caught:
        resolve_reference("Email", items + [(ItemId(bytes(16)), "Email")])
    assert sorted(c["title"] for c in caught.value.candidates) == ["Email", "Email"]
    assert "Email" not in str(caught.value)
    # an exact title wins over titles that only fold alike; several that fold alike are ambiguous
    upper = ItemId(bytes.fromhex("bbbbbb" + "00" * 13))
    assert resolve_reference("Email", items + [(upper, "EMAIL")]) == a
    with pytest.raises(Ambiguous) as caught:
        resolve_reference("email", items + [(upper, "EMAIL")])
    assert sorted(c["id"] for c in caught.value.candidates) == sorted([str(a), str(upper)])
