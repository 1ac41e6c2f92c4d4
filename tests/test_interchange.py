"""Import and export at the library level: the pure format mapping (CSV, Bitwarden JSON), KeePass
files through pykeepass, and the vault side against real SQLite files (one batch, nothing twice,
nothing changed by a bad file)."""

import csv
import errno
import hashlib
import io
import json
import os
import stat
import time
import uuid
from pathlib import Path

import pytest
from pykeepass import PyKeePass, create_database

from helpers import make_replicas, sync_pair
from vaultpeer.core.errors import InvalidInput, NotFound, WrongPassword
from vaultpeer.core.interchange import (
    ALREADY_IMPORTED,
    ALREADY_IMPORTED_DELETED,
    DUPLICATE_IN_FILE,
    EMPTY_ENTRY,
    EXPORTED_FROM_HERE,
    SOURCE_FIELD,
    ImportEntry,
    csv_export,
    known_sources,
    parse_bitwarden,
    parse_csv,
    plan_import,
    to_content,
)
from vaultpeer.service.kdbx import build_kdbx, read_kdbx
from vaultpeer.service.transfer import (
    StagedImports,
    chunk_entries,
    export_items,
    import_entries,
)
from vaultpeer.service.user_files import write_private_file

KDBX_PASSWORD = "kdbx-file-password"


def fingerprint(vault) -> tuple:
    """Everything an import could change: every stored revision."""
    return tuple(sorted((str(r.revision_id), r.ciphertext) for r in vault.held_records().revisions))


def fields_of(vault, title: str) -> dict:
    return vault.get(title).content.field_map()


def secrets_of(vault, title: str) -> set:
    return {f.name for f in vault.get(title).fields if f.secret}


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_maps_documented_columns_and_keeps_others_as_fields():
    text = ("Name,Login_Username,PASSWORD,Website,Notes,OTP,Group,Tags,Favorite,PIN,Email\r\n"
            'Mail,alice,p"w,1,https://mail.example,"two\nlines",JBSWY3DP,Internet/Mail,"a, b",1,1234,'
            "al@example.org\r\n")
    with pytest.raises(InvalidInput):  # one more cell than the header (the unquoted comma)
        parse_csv(text)
    text = text.replace('p"w,1', '"p""w,1"')
    (entry,) = parse_csv(text).entries
    assert entry.title == "Mail"
    assert entry.fields == (("username", "alice"), ("password", 'p"w,1'), ("url", "https://mail.example"),
                            ("notes", "two\nlines"), ("totp", "JBSWY3DP"), ("PIN", "1234"),
                            ("Email", "al@example.org"), ("folder", "Internet/Mail"), ("tags", "a, b"))
    content = to_content(entry)
    assert {f.name for f in content.fields if f.secret} == {"password", "totp"}
    assert content.field(SOURCE_FIELD).value == entry.source and entry.source.startswith("csv:")


def test_csv_of_bitwarden_export_columns():
    text = ("folder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,login_password,login_totp\n"
            "Work,1,login,VPN,,\"PIN: 42\nRegion: eu\",0,https://vpn.example,bob,s3cret,\n")
    (entry,) = parse_csv(text).entries
    assert entry.title == "VPN"
    assert dict(entry.fields) == {"username": "bob", "password": "s3cret", "url": "https://vpn.example",
                                  "PIN": "42", "Region": "eu", "folder": "Work"}


def test_csv_cells_may_be_as_large_as_an_item():
    notes = "n" * 500_000
    (entry,) = parse_csv(f"title,notes\nLong,{notes}\n").entries
    assert dict(entry.fields)["notes"] == notes
    with pytest.raises(InvalidInput, match="line"):
        parse_csv(f"title,notes\nLonger,{'n' * (1024 * 1024 + 1)}\n")
    assert csv.field_size_limit() == 131072  # the process-wide limit is put back


def test_csv_source_key_ignores_column_order_but_not_content():
    a = parse_csv("title,username,password\nMail,alice,pw\n").entries[0]
    b = parse_csv("password,title,username\npw,Mail,alice\n").entries[0]
    c = parse_csv("title,username,password\nMail,alice,pw2\n").entries[0]
    assert a.source == b.source != c.source
    assert "pw" not in a.source and "alice" not in a.source


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("alice,secret,https://x\n", "header row"),
    ('title,password\n"unterminated,x\n', "not a valid CSV"),
    ('title,password\nA,"x"y\n', "not a valid CSV"),
    ("title,password\nA,b,c\n", "more cells"),
])
def test_a_malformed_csv_is_refused(text, message):
    with pytest.raises(InvalidInput, match=message):
        parse_csv(text)


def test_csv_export_round_trips_through_csv_import():
    items = [
        {"id": "00" * 16, "title": "Mail", "fields": {"username": "alice", "password": 'p,w"1\n', "PIN": "12",
                                                     "folder": "A/B", SOURCE_FIELD: "kdbx:00"}, "secrets": ["password"],
         "conflict": False},
        {"id": "11" * 16, "title": "Note, with comma", "fields": {"notes": "x\ny", "Extra": "e"}, "secrets": [],
         "conflict": False},
    ]
    text = csv_export(items)
    assert next(csv.reader(io.StringIO(text))) == ["title", "username", "password", "url", "notes", "totp", "folder",
                                                   "tags", "PIN", "Extra"]
    assert SOURCE_FIELD not in text
    entries = parse_csv(text).entries
    assert [(e.title, dict(e.fields)) for e in entries] == [
        ("Mail", {"username": "alice", "password": 'p,w"1\n', "PIN": "12", "folder": "A/B"}),
        ("Note, with comma", {"notes": "x\ny", "Extra": "e"}),
    ]


# --- Bitwarden ---------------------------------------------------------------------------------

BITWARDEN_EXPORT = {
    "encrypted": False,
    "folders": [{"id": "f-1", "name": "Social"}],
    "items": [
        {"id": "b7a1f3c2-0001", "organizationId": None, "folderId": "f-1", "type": 1, "reprompt": 0,
         "name": "Forum", "notes": "since 2019", "favorite": False,
         "fields": [{"name": "security question", "value": "blue", "type": 0, "linkedId": None},
                    {"name": "recovery code", "value": "RC-7781", "type": 1, "linkedId": None},
                    {"name": "newsletter", "value": None, "type": 2, "linkedId": None},
                    {"name": "2fa", "value": True, "type": 2, "linkedId": None},
                    {"name": "user again", "value": None, "type": 3, "linkedId": 100}],
         "login": {"uris": [{"match": None, "uri": None}, {"match": None, "uri": "https://forum.example"},
                            {"match": 3, "uri": "https://m.forum.example"}],
                   "username": "alice", "password": "Fo-pass-1", "totp": "otpauth://totp/Forum?secret=JBSWY3DP",
                   "fido2Credentials": []},
         "collectionIds": None, "revisionDate": "2024-01-01T00:00:00.000Z", "deletedDate": None},
        {"id": "b7a1f3c2-0002", "folderId": None, "type": 2, "name": "Wifi", "notes": "WPA2: hunter22",
         "secureNote": {"type": 0}, "fields": []},
        {"id": "b7a1f3c2-0003", "folderId": None, "type": 3, "name": "Visa",
         "card": {"cardholderName": "Alice A", "brand": "Visa", "number": "4111111111111111", "expMonth": "7",
                  "expYear": "2031", "code": "123"}},
        {"id": "b7a1f3c2-0004", "type": 4, "name": "Me",
         "identity": {"title": "Ms", "firstName": "Alice", "lastName": "A", "email": "a@example.org",
                      "ssn": "123-45-6789", "passportNumber": None}},
        {"id": "b7a1f3c2-0005", "type": 5, "name": "Server key",
         "sshKey": {"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAA\n-----END OPENSSH PRIVATE KEY-----",
                    "publicKey": "ssh-ed25519 AAAA", "keyFingerprint": "SHA256:xyz"}},
        {"id": "b7a1f3c2-0006", "type": 99, "name": "From the future"},
        {"id": "b7a1f3c2-0007", "type": 1, "name": "Old", "login": {"username": "x"},
         "deletedDate": "2024-02-02T00:00:00.000Z"},
    ],
}


def test_bitwarden_export_maps_every_item_type():
    parsed = parse_bitwarden(json.dumps(BITWARDEN_EXPORT))
    by_title = {e.title: e for e in parsed.entries}
    forum = by_title["Forum"]
    assert forum.source == "bitwarden:b7a1f3c2-0001"
    assert forum.fields == (("username", "alice"), ("password", "Fo-pass-1"), ("url", "https://forum.example"),
                            ("url 2", "https://m.forum.example"), ("totp", "otpauth://totp/Forum?secret=JBSWY3DP"),
                            ("notes", "since 2019"), ("security question", "blue"), ("recovery code", "RC-7781"),
                            ("2fa", "true"), ("folder", "Social"))
    assert {f.name for f in to_content(forum).fields if f.secret} == {"password", "totp", "recovery code"}
    assert dict(by_title["Wifi"].fields) == {"notes": "WPA2: hunter22"}
    visa = to_content(by_title["Visa"])
    assert visa.field_map() | {SOURCE_FIELD: ""} == {
        "cardholder": "Alice A", "brand": "Visa", "card number": "4111111111111111", "expiry": "07/2031",
        "security code": "123", SOURCE_FIELD: ""}
    assert {f.name for f in visa.fields if f.secret} == {"card number", "security code"}
    me = to_content(by_title["Me"])
    assert me.field_map()["first name"] == "Alice" and me.field_map()["honorific"] == "Ms"
    assert {f.name for f in me.fields if f.secret} == {"ssn"}
    key = to_content(by_title["Server key"])
    assert key.field("private key").secret and key.field("public key").value == "ssh-ed25519 AAAA"
    assert [n.to_json() for n in parsed.skipped] == [
        {"title": "From the future", "reason": "unsupported Bitwarden item type 99"},
        {"title": "Old", "reason": "in the Bitwarden trash"},
    ]
    assert [n.to_json() for n in parsed.warnings] == [
        {"title": "Forum", "reason": "linked custom fields are not imported (they repeat another field)"}]


@pytest.mark.parametrize("document, message", [
    ("{not json", "not a valid JSON"),
    ("[]", "expected an object"),
    ('{"items": {}}', "expected an object"),
    ('{"encrypted": true, "encKeyValidation_DO_NOT_EDIT": "2.x", "items": []}', "encrypted Bitwarden export"),
    ('{"encrypted": true, "passwordProtected": true, "salt": "x", "kdfType": 0, "data": "2.abc"}',
     "encrypted Bitwarden export"),
    ('{"items": ["x"]}', "item 1 is not an object"),
    ('{"items": [{"type": 1, "name": "A", "login": {"username": ["alice"]}}]}', "username is not text"),
    ('{"items": [{"type": 1, "name": "A", "login": {"uris": "https://x"}}]}', "uris are not a list"),
    ('{"folders": [{"name": "no id"}], "items": []}', "no id"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_a_malformed_bitwarden_file_is_refused(document, message):
    with pytest.raises(InvalidInput, match=message):
        parse_bitwarden(document)


def test_an_error_message_never_carries_a_value():
    secret = "S3CRET-VALUE-in-a-bad-place"
    with pytest.raises(InvalidInput) as caught:
        parse_bitwarden(json.dumps({"items": [{"type": 1, "name": "A", "login": {"password": {"v": secret}}}]}))
    assert secret not in str(caught.value)
    entry = parse_bitwarden(json.dumps({"items": [{"id": "1", "type": 1, "name": "T",
                                                   "login": {"password": secret}}]})).entries[0]
    assert secret not in repr(entry) and secret not in repr(to_content(entry))


# --- entries to items --------------------------------------------------------------------------


def test_entries_become_valid_items():
    entry = ImportEntry("  Multi\nline\x00title ", (("url", "https://a"), ("", "x"), ("url", "https://b"),
                                                   (SOURCE_FIELD, "theirs"), ("empty", ""), ("Password", "pw")),
                        "src:1")
    content = to_content(entry)
    assert content.title == "Multi line title"
    assert [(f.name, f.value, f.secret) for f in content.fields] == [
        ("url", "https://a", False), ("field", "x", False), ("url 2", "https://b", False),
        (f"{SOURCE_FIELD} 2", "theirs", False), ("Password", "pw", True), (SOURCE_FIELD, "src:1", False)]
    assert to_content(ImportEntry("", (("url", "https://a.example"), ("password", "pw")), "s")).title == \
        "https://a.example"
    assert to_content(ImportEntry("", (("password", "pw"),), "s")).title == "Untitled"  # never a secret
    assert to_content(ImportEntry(" ", (("notes", ""),), "s")) is None


def test_plan_skips_known_duplicate_empty_and_oversized_entries():
    entries = [
        ImportEntry("New", (("password", "a"),), "k:1"),
        ImportEntry("Again", (("password", "a"),), "k:1"),
        ImportEntry("Known", (("password", "b"),), "k:2"),
        ImportEntry("", (), "k:3"),
        ImportEntry("Huge", (("notes", "x" * (1024 * 1024 + 1)),), "k:4"),
        ImportEntry("Wide", tuple((f"f{n}", "v") for n in range(600)), "k:5"),
    ]
    plan = plan_import(entries, {"k:2": ALREADY_IMPORTED})
    assert [c.title for c in plan.contents] == ["New"]
    assert [(n.title, n.reason.split(":")[0]) for n in plan.skipped] == [
        ("Again", DUPLICATE_IN_FILE), ("Known", ALREADY_IMPORTED), (None, EMPTY_ENTRY),
        ("Huge", "cannot be stored"), ("Wide", "cannot be stored")]


def test_known_sources_name_the_reason():
    known = known_sources([("ab" * 16, False, {SOURCE_FIELD: "csv:1"}), ("cd" * 16, True, {SOURCE_FIELD: "csv:2"}),
                           ("ef" * 16, False, {})])
    assert known == {"kdbx:" + "ab" * 16: EXPORTED_FROM_HERE, "csv:1": ALREADY_IMPORTED,
                     "kdbx:" + "cd" * 16: EXPORTED_FROM_HERE, "csv:2": ALREADY_IMPORTED_DELETED,
                     "kdbx:" + "ef" * 16: EXPORTED_FROM_HERE}


@pytest.mark.parametrize("value", [
    [], {"title": "A", "fields": {}, "source": ""}, {"title": "A", "fields": {"a": 1}, "source": "s"},
    {"title": 1, "fields": {}, "source": "s"}, {"title": "A", "fields": {}, "source": "s\nt"},
    {"title": "A", "fields": {}, "source": "s", "secrets": "password"}, {"title": "A", "source": "s", "x": 1},
    {"title": "A", "fields": {}, "source": "s" * 201},
])
def test_api_entries_are_checked(value):
    with pytest.raises(InvalidInput):
        ImportEntry.from_json(value)


def test_api_entry_shape_round_trips():
    entry = ImportEntry("T", (("b", "2"), ("a", "1")), "s:1", frozenset({"a", "missing"}))
    data = entry.to_json()
    assert data == {"title": "T", "fields": {"b": "2", "a": "1"}, "source": "s:1", "secrets": ["a"]}
    assert list(json.loads(json.dumps(data))["fields"]) == ["b", "a"]
    again = ImportEntry.from_json(json.loads(json.dumps(data)))
    assert again.fields == entry.fields and again.secrets == {"a"}


# --- KeePass -----------------------------------------------------------------------------------


def make_kdbx(path) -> dict:
    """A KeePass database made with pykeepass: groups, tags, protected custom fields, TOTP, an
    attachment, history, and an entry in the recycle bin. Returns the entries' UUIDs by title."""
    keepass = create_database(str(path), password=KDBX_PASSWORD)
    internet = keepass.add_group(keepass.root_group, "Internet")
    mail = keepass.add_group(internet, "Mail")
    a = keepass.add_entry(mail, "Webmail", "alice", "Wm-pass-1", url="https://mail.example",
                          notes="first\nsecond", tags=["work", "mail"],
                          otp="otpauth://totp/Webmail?secret=JBSWY3DPEHPK3PXP")
    a.set_custom_property("PIN", "2468", protect=True)
    a.set_custom_property("Recovery email", "r@example.org")
    a.save_history()
    a.password = "Wm-pass-2"  # the current password is the one imported; history is not
    b = keepass.add_entry(keepass.root_group, "Bank", "bob", "Bk-pass-1")
    b.title = 'Bank "main"'  # (pykeepass's add_entry cannot take a quote in a title)
    binary = keepass.add_binary(b"attached bytes")
    b.add_attachment(binary, "scan.pdf")
    c = keepass.add_entry(keepass.root_group, "", "", "only-a-password")
    gone = keepass.add_entry(keepass.root_group, "Deleted one", "x", "Del-pass")
    keepass.trash_entry(gone)
    keepass.save()
    return {"Webmail": a.uuid.hex, "Bank": b.uuid.hex, "untitled": c.uuid.hex}


def test_kdbx_import_maps_every_part_of_an_entry(vault, tmp_path):
    path = tmp_path / "db.kdbx"
    uuids = make_kdbx(path)
    parsed = read_kdbx(path.read_bytes(), KDBX_PASSWORD)
    assert [n.to_json() for n in parsed.skipped] == [{"title": "Deleted one", "reason": "in the KeePass recycle bin"}]
    assert [n.to_json() for n in parsed.warnings] == [
        {"title": 'Bank "main"', "reason": "1 attachment(s) not imported"}]
    report = import_entries(vault, parsed.entries)
    assert report["imported"] == 3 and report["skipped"] == []
    assert fields_of(vault, "Webmail") == {
        "username": "alice", "password": "Wm-pass-2", "url": "https://mail.example", "notes": "first\nsecond",
        "totp": "otpauth://totp/Webmail?secret=JBSWY3DPEHPK3PXP", "PIN": "2468", "Recovery email": "r@example.org",
        "folder": "Internet/Mail", "tags": "work, mail", SOURCE_FIELD: f"kdbx:{uuids['Webmail']}"}
    assert secrets_of(vault, "Webmail") == {"password", "totp", "PIN"}
    assert fields_of(vault, 'Bank "main"') == {"username": "bob", "password": "Bk-pass-1",
                                               SOURCE_FIELD: f"kdbx:{uuids['Bank']}"}
    assert fields_of(vault, "Untitled")["password"] == "only-a-password"
    assert {i["title"] for i in report["items"]} == {"Webmail", 'Bank "main"', "Untitled"}


def test_importing_again_imports_nothing_even_after_edits_and_deletes(vault, tmp_path):
    path = tmp_path / "db.kdbx"
    make_kdbx(path)
    entries = read_kdbx(path.read_bytes(), KDBX_PASSWORD).entries
    assert import_entries(vault, entries)["imported"] == 3
    vault.edit("Webmail", {"password": "changed here"}, title="Webmail (edited)")
    vault.delete('Bank "main"')
    before = fingerprint(vault)
    report = import_entries(vault, read_kdbx(path.read_bytes(), KDBX_PASSWORD).entries)
    assert report["imported"] == 0 and fingerprint(vault) == before
    reasons = {s.get("title"): s["reason"] for s in report["skipped"]}
    assert reasons == {"Webmail": ALREADY_IMPORTED, 'Bank "main"': ALREADY_IMPORTED_DELETED,
                       None: ALREADY_IMPORTED}


def test_a_wrong_kdbx_password_or_a_damaged_file_changes_nothing(vault, tmp_path):
    path = tmp_path / "db.kdbx"
    make_kdbx(path)
    vault.add("Existing", {"password": "x"})
    before = fingerprint(vault)
    data = path.read_bytes()
    with pytest.raises(WrongPassword) as caught:
        read_kdbx(data, "not the password")
    assert "not the password" not in str(caught.value)
    damaged = data[:len(data) // 2] + bytes(b ^ 0xFF for b in data[len(data) // 2:len(data) // 2 + 64]) \
        + data[len(data) // 2 + 64:]
    for bad in (damaged, data[:200], b"", b"hello, not keepass", json.dumps(BITWARDEN_EXPORT).encode()):
        with pytest.raises((InvalidInput, WrongPassword)):
            read_kdbx(bad, KDBX_PASSWORD)
    assert fingerprint(vault) == before


def test_kdbx_export_keeps_titles_fields_groups_and_ids(vault, tmp_path):
    vault.add("Mail", {"username": "alice", "password": "Ma-pass-1", "url": "https://m", "notes": "n1\nn2",
                       "totp": "JBSWY3DPEHPK3PXP", "PIN": "1357", "folder": "Work/Mail", "tags": "a, b",
                       "Password": "a custom field named like a KeePass one"})
    mail_id = vault.get("Mail").id
    vault.add("Quote \"in\" title", {"password": "Qu-pass-1"})
    vault.add("Deleted", {"password": "De-pass-1"})
    vault.delete("Deleted")
    items = export_items(vault)
    assert sorted(i["title"] for i in items) == ["Mail", 'Quote "in" title']
    data = build_kdbx(items, "export-password")
    keepass = PyKeePass(io.BytesIO(data), password="export-password")
    assert keepass.version == (4, 0) and keepass.kdf_algorithm == "argon2"
    by_title = {e.title: e for e in keepass.entries}
    mail = by_title["Mail"]
    assert (mail.username, mail.password, mail.url, mail.notes) == ("alice", "Ma-pass-1", "https://m", "n1\nn2")
    assert mail.otp == "otpauth://totp/Mail?secret=JBSWY3DPEHPK3PXP"
    assert mail.path == ["Work", "Mail", "Mail"] and mail.tags == ["a", "b"]
    assert mail.custom_properties == {"PIN": "1357", "Password 2": "a custom field named like a KeePass one"}
    assert mail.uuid == uuid.UUID(hex=str(mail_id))
    assert by_title['Quote "in" title'].password == "Qu-pass-1"
    # back into the same vault: nothing twice; into a new one: the same items
    before = fingerprint(vault)
    report = import_entries(vault, read_kdbx(data, "export-password").entries)
    assert report["imported"] == 0 and {s["reason"] for s in report["skipped"]} == {EXPORTED_FROM_HERE}
    assert fingerprint(vault) == before


def test_kdbx_export_imports_into_another_vault_with_the_same_fields(vault, tmp_path):
    other = make_replicas(1)[0]
    vault.add("Mail", {"username": "alice", "password": "Ma-pass-1", "notes": "n", "PIN": "1357",
                       "totp": "otpauth://totp/Mail?secret=JBSWY3DP"})
    data = build_kdbx(export_items(vault), "export-password")
    assert import_entries(other, read_kdbx(data, "export-password").entries)["imported"] == 1
    original = vault.get("Mail").content.field_map()
    copied = other.get("Mail").content.field_map()
    assert copied.pop(SOURCE_FIELD) == f"kdbx:{vault.get('Mail').id}"
    assert copied == original


def test_an_item_xml_cannot_carry_fails_the_export_by_id_only(vault):
    vault.add("Control", {"password": "bell\x07"})
    items = export_items(vault)
    with pytest.raises(InvalidInput) as caught:
        build_kdbx(items, "export-password")
    assert items[0]["id"] in str(caught.value) and "bell" not in str(caught.value)


def test_export_of_an_item_in_conflict_carries_the_shown_value():
    a, b = make_replicas(2)
    a.add("Shared", {"password": "base"})
    sync_pair(a, b)
    a.edit("Shared", {"password": "from a"})
    b.edit("Shared", {"password": "from b"})
    sync_pair(a, b)
    (item,) = export_items(a)
    assert item["conflict"] and item["fields"]["password"] == a.get("Shared").content.field_map()["password"]
    assert item["fields"]["password"] in ("from a", "from b")


# --- the vault side ------------------------------------------------------------------------------


def test_an_import_is_one_batch_of_revisions(vault):
    vault.add("Before", {"password": "x"})
    entries = [ImportEntry(f"Item {n}", (("password", f"pw-{n}"),), f"t:{n}") for n in range(20)]
    statements = []
    vault._store._db.set_trace_callback(statements.append)
    try:
        report = import_entries(vault, entries)
    finally:
        vault._store._db.set_trace_callback(None)
    assert report["imported"] == 20 and len(vault.list_items()) == 21
    assert [s for s in statements if s.split()[0].upper() in ("BEGIN", "COMMIT")] == ["BEGIN IMMEDIATE", "COMMIT"]
    seqs = sorted(r.revision_id.seq for r in vault.held_records().revisions)
    assert seqs == list(range(1, 22))


def test_a_failure_during_the_batch_stores_none_of_it(vault):
    before = fingerprint(vault)
    entries = [ImportEntry(f"Item {n}", (("password", f"pw-{n}"),), f"t:{n}") for n in range(10)]

    def fail_at_seven(done: int) -> None:
        if done == 7:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        import_entries(vault, entries, progress=fail_at_seven)
    assert fingerprint(vault) == before and vault.list_items() == []
    assert import_entries(vault, entries)["imported"] == 10  # and the same import then works


def test_imported_secrets_reach_no_file_in_cleartext(vault, home, tmp_path):
    canaries = {"title": "CanaryTitle-77ab", "password": "CANARY-PW-31f9", "field": "canary-field-c3d1",
                "folder": "CanaryFolder-9e0f"}
    path = tmp_path / "db.kdbx"
    keepass = create_database(str(path), password=KDBX_PASSWORD)
    group = keepass.add_group(keepass.root_group, canaries["folder"])
    entry = keepass.add_entry(group, canaries["title"], "u", canaries["password"])
    entry.set_custom_property(canaries["field"], "v")
    keepass.save()
    import_entries(vault, read_kdbx(path.read_bytes(), KDBX_PASSWORD).entries)
    assert fields_of(vault, canaries["title"])["password"] == canaries["password"]
    canaries["source"] = entry.uuid.hex
    vault.close()  # everything written and the database closed before its files are read
    for file in home.path.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            for what, canary in canaries.items():
                assert canary.encode() not in data, f"{what} in {file.name}"


def test_staged_imports_are_bounded_expire_and_clear():
    now = [0.0]
    staged = StagedImports(clock=lambda: now[0], ttl=60)
    entry = ImportEntry("T", (("password", "p"),), "s")
    token = staged.stage(None, [entry])
    assert staged.stage(token, [entry, entry]) == token and staged.count(token) == 3
    assert len(staged.take(token)) == 3
    with pytest.raises(NotFound):
        staged.take(token)
    token = staged.stage(None, [entry])
    now[0] = 61
    with pytest.raises(NotFound):
        staged.stage(token, [entry])
    tokens = [staged.stage(None, [entry]) for _ in range(StagedImports.MAX_BATCHES)]
    with pytest.raises(InvalidInput):
        staged.stage(None, [entry])
    staged.clear()
    with pytest.raises(NotFound):
        staged.take(tokens[0])
    big = ImportEntry("T", (("notes", "x" * 1024),), "s")
    staged.MAX_CHARS = 10_000
    token = staged.stage(None, [big] * 5)
    with pytest.raises(InvalidInput):
        staged.stage(token, [big] * 5)


def test_entries_are_chunked_under_the_request_limit():
    entries = [ImportEntry(f"E{n}", (("notes", "é" * 3000),), f"s:{n}") for n in range(100)]
    entries.append(ImportEntry("Huge", (("notes", "x" * 200_000),), "s:huge"))
    chunks, too_large = chunk_entries(entries, limit=100_000)
    assert sum(len(c) for c in chunks) == 100 and len(chunks) > 1
    assert all(len(json.dumps(c)) <= 100_000 for c in chunks)
    assert too_large == [
        {"title": "Huge", "reason": "too large to send to the daemon (stop it, then import without it)"}]


# --- files -------------------------------------------------------------------------------------


def test_export_files_are_private_and_never_replaced_unless_asked(tmp_path):
    target = tmp_path / "out.csv"
    old_umask = os.umask(0)
    try:
        write_private_file(target, b"one", overwrite=False)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == b"one"
    with pytest.raises(InvalidInput, match="exists"):
        write_private_file(target, b"two", overwrite=False)
    assert target.read_bytes() == b"one"
    target.chmod(0o644)
    write_private_file(target, b"three", overwrite=True)
    assert target.read_bytes() == b"three" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temporary file left
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(b"three").hexdigest()


# --- dates ------------------------------------------------------------------------------------


def test_a_kdbx_entrys_last_modification_time_dates_the_imported_item(vault, tmp_path):
    from datetime import datetime, timezone

    path = tmp_path / "db.kdbx"
    keepass = create_database(str(path), password=KDBX_PASSWORD)
    dated = keepass.add_entry(keepass.root_group, "Dated", "alice", "pw-1")
    dated.mtime = datetime(2019, 5, 4, 3, 2, 1, tzinfo=timezone.utc)
    broken = keepass.add_entry(keepass.root_group, "Broken date", "bob", "pw-2")
    broken._element.find("Times/LastModificationTime").text = "not a time"
    keepass.save()
    entries = {e.title: e for e in read_kdbx(path.read_bytes(), KDBX_PASSWORD).entries}
    assert entries["Dated"].time == 1_556_938_921
    assert entries["Broken date"].time is None  # an unreadable date never stops an import
    before = int(time.time())
    import_entries(vault, list(entries.values()))
    assert vault.get("Dated").modified == 1_556_938_921
    assert before <= vault.get("Broken date").modified <= int(time.time()) + 1
    (first,) = vault.history("Dated")
    assert first.time == 1_556_938_921 and first.revision.author == vault.device.device_id


def test_a_bitwarden_revision_date_dates_the_imported_item_and_csv_has_none(vault):
    document = {"items": [
        {"id": "d1", "type": 2, "name": "Dated", "notes": "n", "revisionDate": "2023-08-09T10:11:12.345Z"},
        {"id": "d2", "type": 2, "name": "Zoned", "notes": "n", "revisionDate": "2023-08-09T12:11:12+02:00"},
        {"id": "d3", "type": 2, "name": "Garbled", "notes": "n", "revisionDate": "yesterday"},
        {"id": "d4", "type": 2, "name": "Numeric", "notes": "n", "revisionDate": 1691575872},
        {"id": "d5", "type": 2, "name": "Before 1970", "notes": "n", "revisionDate": "1969-12-31T23:59:59Z"},
        {"id": "d6", "type": 2, "name": "Undated", "notes": "n"},
    ]}
    times = {e.title: e.time for e in parse_bitwarden(json.dumps(document)).entries}
    assert times == {"Dated": 1_691_575_872, "Zoned": 1_691_575_872, "Garbled": None, "Numeric": None,
                     "Before 1970": None, "Undated": None}
    assert all(e.time is None for e in parse_csv("title,password,last modified\nA,p,2020-01-01\n").entries)
    # through the API's entry shape (an import through the daemon) the time travels too
    entries = [ImportEntry.from_json(json.loads(json.dumps(e.to_json())))
               for e in parse_bitwarden(json.dumps(document)).entries]
    assert {e.title: e.time for e in entries} == times
    before = int(time.time())
    import_entries(vault, entries)
    assert vault.get("Dated").modified == 1_691_575_872
    assert before <= vault.get("Undated").modified <= int(time.time()) + 1


@pytest.mark.parametrize("value", [-1, 2**53, 1.5, "1691575872", True])
def test_an_api_entry_with_a_time_out_of_range_is_refused(value):
    with pytest.raises(InvalidInput, match="time"):
        ImportEntry.from_json({"title": "A", "fields": {"a": "1"}, "source": "s", "time": value})


def test_a_new_private_file_appears_complete_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    real_link = os.link
    seen = []
    monkeypatch.setattr(os, "link", lambda source, dest: (seen.append(Path(source).read_bytes()),
                                                          real_link(source, dest)))
    write_private_file(target, b"whole", overwrite=False)
    assert seen == [b"whole"] and target.read_bytes() == b"whole"  # named only once written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]

    def no_hard_links(source, dest):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)  # e.g. a FAT stick: written in place, still 0600
    write_private_file(tmp_path / "fat.txt", b"data", overwrite=False)
    assert (tmp_path / "fat.txt").read_bytes() == b"data"
    assert stat.S_IMODE((tmp_path / "fat.txt").stat().st_mode) == 0o600
    with pytest.raises(InvalidInput, match="exists"):
        write_private_file(tmp_path / "fat.txt", b"again", overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fat.txt", "out.txt"]
