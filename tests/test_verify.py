"""Signatures checked on several threads give exactly the answer of checking them one by one."""

import dataclasses

import pytest

from helpers import make_replicas
from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.vclock import VersionVector
from vaultpeer.service.parallel_verify import PARALLEL_FROM, verify_revisions


@pytest.fixture(scope="module")
def signed():
    (vault,) = make_replicas(1)
    for n in range(PARALLEL_FROM * 3 + 5):
        vault.add(f"item {n}", {"password": str(n)})
    revisions = list(vault.revisions_missing_from(VersionVector()))
    keys = [vault.roster.accepts_revision_from(r.author, r.revision_id.seq) for r in revisions]
    return vault.vault_id, revisions, keys


def test_a_large_batch_of_good_signatures_passes(signed):
    vault_id, revisions, keys = signed
    verify_revisions(revisions, vault_id, keys)
    verify_revisions(revisions[:3], vault_id, keys[:3])


@pytest.mark.parametrize("position", [0, PARALLEL_FROM + 1, -1])
def test_one_bad_signature_anywhere_fails_the_batch(signed, position):
    vault_id, revisions, keys = signed
    forged = list(revisions)
    bad = forged[position]
    forged[position] = dataclasses.replace(bad, signature=bytes([bad.signature[0] ^ 1]) + bad.signature[1:])
    with pytest.raises(IntegrityError):
        verify_revisions(forged, vault_id, keys)


def test_an_author_not_allowed_or_another_vault_fails_the_batch(signed):
    vault_id, revisions, keys = signed
    refused = list(keys)
    refused[PARALLEL_FROM * 2] = None
    with pytest.raises(IntegrityError):
        verify_revisions(revisions, vault_id, refused)
    with pytest.raises(IntegrityError):
        verify_revisions(revisions, bytes(len(vault_id)), keys)
