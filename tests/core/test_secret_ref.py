"""Secret references: parsing, templates, and masking secrets in a stream of output."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.errors import Ambiguous, InvalidInput, NotFound
from vaultpeer.core.secret_ref import (
    OutputMasker,
    ReferenceInConflict,
    SecretRef,
    field_value,
    fill_template,
    is_ref,
    parse_ref,
    template_refs,
)


def test_a_reference_names_an_item_and_a_field_percent_encoded():
    assert parse_ref("vp://My%20Bank/password") == SecretRef("My Bank", "password")
    assert parse_ref("  VP://0123456789abcdef0123456789abcdef/api%2Fkey\n") == \
        SecretRef("0123456789abcdef0123456789abcdef", "api/key")
    ref = SecretRef("a/b c", "x%y")
    assert parse_ref(str(ref)) == ref
    assert is_ref("vp://a/b") and not is_ref("https://a/b") and not is_ref("")


@pytest.mark.parametrize("text,message", [
    ("https://example.com/x", "starts with vp://"),
    ("vp://onlyitem", "vp://ITEM/FIELD"),
    ("vp://item/", "vp://ITEM/FIELD"),
    ("vp:///field", "vp://ITEM/FIELD"),
    ("vp://vault/item/field", "names a vault"),
    ("vp://a/b/c/d", "vp://ITEM/FIELD"),
    ("vp://%FF/x", "percent-encoded UTF-8"),
    ("vp://%20/x", "vp://ITEM/FIELD"),
])
def test_what_is_not_a_reference_says_why(text, message):
    with pytest.raises(InvalidInput, match=message):
        parse_ref(text)


def test_templates_are_filled_and_their_references_listed_once():
    template = "user={{ vp://Bank/username }}\npass={{vp://Bank/password}}\nagain={{ vp://Bank/password }}\n{{ not }}"
    assert template_refs(template) == [SecretRef("Bank", "username"), SecretRef("Bank", "password")]
    values = {SecretRef("Bank", "username"): "alice", SecretRef("Bank", "password"): "s3cret"}
    assert fill_template(template, values.__getitem__) == "user=alice\npass=s3cret\nagain=s3cret\n{{ not }}"


def test_masking_catches_a_secret_split_across_chunks():
    masker = OutputMasker(["hunter2", "hunt"])
    out = b"".join([masker.feed(b"pass: hun"), masker.feed(b"ter2 and hu"), masker.feed(b"nt!"), masker.flush()])
    assert out == b"pass: <concealed by vaultpeer> and <concealed by vaultpeer>!"
    held = OutputMasker(["abc"])
    assert held.feed(b"xxab") == b"xx" and held.flush() == b"ab"


def test_masking_nothing_passes_bytes_through():
    masker = OutputMasker(["", ""])
    assert masker.feed(b"anything") == b"anything" and masker.flush() == b""


@given(st.lists(st.text("ab", min_size=1, max_size=4), min_size=1, max_size=3),
       st.text("abx", max_size=40), st.lists(st.integers(0, 40), max_size=6))
def test_no_secret_survives_any_chunking(secrets, text, cuts):
    data = text.encode()
    masker = OutputMasker(secrets)
    pieces, last = [], 0
    for cut in sorted(cuts) + [len(data)]:
        pieces.append(masker.feed(data[last:max(last, cut)]))
        last = max(last, cut)
    out = b"".join(pieces) + masker.flush()
    whole = OutputMasker(secrets)
    assert out == whole.feed(data) + whole.flush()  # chunking does not change the result
    remainder = out.replace(OutputMasker.MASK, b"|")
    for secret in secrets:
        assert secret.encode() not in remainder


def test_a_field_is_found_by_its_name_exact_first_then_in_any_case():
    ref = parse_ref("vp://Bank/Password")
    assert field_value(ref, {"password": "a", "Password": "b"}, conflict=False) == "b"
    assert field_value(ref, {"password": "a"}, conflict=False) == "a"
    assert field_value(parse_ref("vp://Bank/empty"), {"empty": ""}, conflict=False) == ""


@pytest.mark.parametrize("fields,conflict,error,message", [
    ({"username": "alice"}, False, NotFound, "no field of that name"),
    ({"password": "a", "PASSWORD": "b"}, False, Ambiguous, "2 fields of that name"),
    ({"Password": "a"}, True, ReferenceInConflict, "in conflict"),
])
def test_a_field_that_does_not_resolve_is_an_error_naming_the_reference(fields, conflict, error, message):
    with pytest.raises(error, match=message) as raised:
        field_value(parse_ref("vp://My%20Bank/Password"), fields, conflict)
    assert str(raised.value).startswith("vp://My%20Bank/Password: ")


@pytest.mark.parametrize("template", [
    "ok={{ vp://Bank/password }}\nbad={{ vp://My Bank/password }}",
    "ok={{ vp://Bank/password }}\nbad={{ vp://Bank/password",
    "x\nbad={{VP://Bank/{password}}}",
])
def test_a_reference_that_is_not_whole_is_an_error_naming_its_line(template):
    with pytest.raises(InvalidInput, match="^line 2: "):
        template_refs(template)


def test_the_scheme_is_read_in_any_case_in_templates_too():
    assert template_refs("{{ VP://Bank/password }}") == [SecretRef("Bank", "password")]
