"""The bundle and join-request formats, pure: round trips, recipients, and one opaque error for
every way a bundle can be wrong."""

import pytest

from vaultpeer.core import bundle as bundle_module
from vaultpeer.core.bundle import BUNDLE_MAGIC, BundleContents, JoinRequest, members_key, open_bundle, seal_bundle
from vaultpeer.core.errors import IntegrityError, InvalidInput
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.core.keys import create_vault
from vaultpeer.core.vclock import VersionVector


@pytest.fixture(scope="module")
def vault():
    founder = DeviceKeys.generate()
    kdf = insecure_test_parameters()
    header, _, _ = create_vault(kdf.derive("a test password"), kdf, founder)
    return founder, header


def contents(exporter: DeviceKeys, header, target=None) -> BundleContents:
    return BundleContents(header.vault_id, exporter.public, target, 1_700_000_000, VersionVector(), header, (), ())


def test_members_open_it_and_so_does_the_device_it_is_for(vault):
    founder, header = vault
    newcomer = DeviceKeys.generate()
    data = seal_bundle(contents(founder, header, newcomer.device_id), founder, members=members_key(header),
                       device_public=newcomer.public.noise_public)
    assert open_bundle(data, members=[members_key(header)]).target == newcomer.device_id
    opened = open_bundle(data, device=newcomer)  # no header yet: its own key opens it
    assert opened.exporter == founder.public and opened.header == header
    with pytest.raises(IntegrityError):
        open_bundle(data, device=DeviceKeys.generate())  # anyone else: nothing
    with pytest.raises(IntegrityError):
        open_bundle(data, members=[bytes(32)])


def test_a_member_cannot_pass_a_bundle_off_as_another_members(vault):
    founder, header = vault
    impostor = DeviceKeys.generate()

    class Masquerade:
        """Claims the founder's public keys but can only sign with its own."""
        public = founder.public
        sign = impostor.sign

    data = seal_bundle(contents(founder, header), Masquerade(), members=members_key(header))
    with pytest.raises(IntegrityError):
        open_bundle(data, members=[members_key(header)])


def test_bundles_are_written_as_version_2_and_version_1_bundles_still_open(vault, monkeypatch):
    """Version 2 bundles may hold revisions whose content carries its time, which a vaultpeer that
    reads version 1 would quarantine: it refuses the file by its version byte instead. What an
    older vaultpeer wrote (version 1, same layout) still opens here."""
    founder, header = vault
    data = seal_bundle(contents(founder, header), founder, members=members_key(header))
    assert data[len(BUNDLE_MAGIC)] == 2
    # the version is bound into the AEAD: relabelling a version 2 bundle as 1 opens nothing
    with pytest.raises(IntegrityError):
        open_bundle(BUNDLE_MAGIC + bytes([1]) + data[len(BUNDLE_MAGIC) + 1:], members=[members_key(header)])
    monkeypatch.setattr(bundle_module, "FORMAT_VERSION", 1)  # as the previous vaultpeer sealed it
    old = seal_bundle(contents(founder, header), founder, members=members_key(header))
    monkeypatch.undo()
    assert old[len(BUNDLE_MAGIC)] == 1
    assert open_bundle(old, members=[members_key(header)]).header == header
    with pytest.raises(InvalidInput, match="format version 3, from a newer vaultpeer.*upgrade vaultpeer"):
        open_bundle(BUNDLE_MAGIC + bytes([3]) + data[len(BUNDLE_MAGIC) + 1:], members=[members_key(header)])


def test_any_altered_byte_is_one_opaque_error(vault):
    founder, header = vault
    data = seal_bundle(contents(founder, header), founder, members=members_key(header))
    messages = set()
    for position in range(9, len(data), max(1, len(data) // 97)):
        altered = bytearray(data)
        altered[position] ^= 0x40
        with pytest.raises(IntegrityError) as caught:
            open_bundle(bytes(altered), members=[members_key(header)])
        messages.add(str(caught.value))
    assert len(messages) == 1, messages
    with pytest.raises(IntegrityError):
        open_bundle(data[:-1], members=[members_key(header)])


def test_join_requests_are_self_signed(vault):
    device = DeviceKeys.generate()
    request = JoinRequest.make(device, "Phone", "Android")
    parsed = JoinRequest.parse(request)
    assert (parsed.device_id, parsed.name, parsed.os_description) == (device.device_id, "Phone", "Android")
    other = DeviceKeys.generate()
    swapped = request.replace(device.public.noise_public, other.public.noise_public)
    with pytest.raises(InvalidInput, match="damaged or altered"):
        JoinRequest.parse(swapped)


@pytest.mark.parametrize("name, os_description", [("evil\rPaired with realdev", "Android"), ("Phone", "\u202eAndroid"),
                                                  ("", "Android"), ("Phone\x1b[2J", "Android")])
def test_a_join_request_whose_name_or_os_is_not_plain_text_is_refused(name, os_description):
    request = JoinRequest.make(DeviceKeys.generate(), name, os_description)  # signed: only the text is wrong
    with pytest.raises(InvalidInput, match="damaged or altered"):
        JoinRequest.parse(request)
