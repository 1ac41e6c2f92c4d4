"""Acceptance tests of the reconciler: a big partition, and random schedules (hypothesis)."""

import os
import random
from functools import partial

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from helpers import make_replicas, sync_pair
from vaultpeer.service.vault import Conflict

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def test_reconnect_after_a_partition_moves_only_the_new_revisions():
    """Each side of a 10,000-item vault makes 100 edits apart; the reconnect moves those 200 revisions."""
    a, b = make_replicas(2)
    items = [a.add(f"item {n:05d}", {"username": f"user{n}", "password": f"pw{n}"}) for n in range(10_000)]
    first, _ = sync_pair(a, b)
    assert first.stats.revisions_sent == 10_000
    rng = random.Random(7)
    chosen = rng.sample(items, 200)
    for view in chosen[:100]:
        a.edit(str(view.id), {"password": "changed on a"})
    for view in chosen[100:]:
        b.edit(str(view.id), {"username": "changed on b"})
    left, right = sync_pair(a, b, merge=False)
    assert (left.stats.revisions_sent, right.stats.revisions_sent) == (100, 100)
    assert left.stats.revisions_new == right.stats.revisions_new == 100
    assert left.converged and right.converged
    assert a._store.head_ids() == b._store.head_ids()


# --- random schedules ---------------------------------------------------------------------------

FIELDS = ["username", "password", "url", "notes"]
VALUES = ["a", "b", "c"]

edit = st.tuples(st.just("edit"), st.integers(0, 4), st.integers(0, 50), st.sampled_from(FIELDS),
                 st.sampled_from(VALUES))
sync = st.tuples(st.just("sync"), st.integers(0, 4), st.integers(0, 4), st.one_of(st.none(), st.integers(1, 6)))
operation = st.one_of(
    edit,
    sync,
    edit,
    sync,
    st.tuples(st.just("add"), st.integers(0, 4), st.sampled_from(VALUES)),
    st.tuples(st.just("remove_field"), st.integers(0, 4), st.integers(0, 50), st.sampled_from(FIELDS)),
    st.tuples(st.just("delete"), st.integers(0, 4), st.integers(0, 50)),
    st.tuples(st.just("restore"), st.integers(0, 4), st.integers(0, 50)),
)


def apply(replicas, op, made):
    kind, who = op[0], replicas[op[1] % len(replicas)]
    live = who.list_items()
    deleted = who.list_items(deleted=True)
    if kind == "add":
        view = who.add(f"item-{len(made)}", {"password": op[2]})
    elif kind == "sync":
        other = replicas[op[2] % len(replicas)]
        if other is not who:
            left, _ = sync_pair(who, other, cut_after=op[3])
            if not left.finished:
                event("a sync was cut off half-way")
        return
    elif kind == "restore":
        if not deleted:
            return
        view = who.restore(str(deleted[op[2] % len(deleted)].id))
    else:
        if not live:
            return
        target = live[op[2] % len(live)]
        if target.conflict or target.flags:
            # a person facing a conflict settles it by taking one of the heads
            event("a conflict or flag was resolved")
            view = who.resolve_conflict(str(target.id), take=str(target.heads[op[2] % len(target.heads)]))
        elif kind == "edit":
            try:
                view = who.edit(str(target.id), {op[3]: op[4]})
            except Exception as exc:  # editing to the same value changes nothing
                assert "nothing to change" in str(exc)
                return
        elif kind == "remove_field":
            if target.content.field(op[3]) is None:
                return
            view = who.edit(str(target.id), remove=[op[3]])
        else:
            view = who.delete(str(target.id))
    made.append(view.revision if view.heads == (view.revision,) else max(view.heads))


def converge(replicas):
    """Full rounds of pairwise syncs until nothing changes; bounded."""
    for _ in range(6):
        before = [r.counts()["revisions"] for r in replicas]
        for i in range(len(replicas)):
            for j in range(i + 1, len(replicas)):
                sync_pair(replicas[i], replicas[j])
        if [r.counts()["revisions"] for r in replicas] == before:
            return
    raise AssertionError("replicas kept writing merge revisions: no convergence in 6 rounds")


def visible_state(vault):
    return sorted(
        (str(v.id), v.title, v.fields, v.deleted, v.conflict, v.flags,
         tuple(sorted((k, tuple((c.revision, c.value) for c in cs)) for k, cs in (v.conflicts or {}).items())))
        for v in vault.list_items() + vault.list_items(deleted=True)
    )


#: Schedules: 3-5 replicas, 1-3 items they all start with, 4-40 operations.
schedules = given(st.integers(3, 5), st.integers(1, 3), st.lists(operation, min_size=4, max_size=40))
budget = partial(settings, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@budget(max_examples=100)
@schedules
def test_random_schedules_converge_without_losing_an_edit(replica_count, shared_items, operations):
    """The normal run's budget: 100 schedules (about 15 s on a loaded 2-core machine; the deep
    budget below runs 2,000)."""
    schedule_converges(replica_count, shared_items, operations)


@pytest.mark.slow
@budget(max_examples=int(os.environ.get("VAULTPEER_SCHEDULES", "2000")))
@schedules
def test_random_schedules_converge_without_losing_an_edit_deep(replica_count, shared_items, operations):
    """The deep budget: 2,000 schedules (about 155 s; VAULTPEER_SCHEDULES sets another count), run
    by `bash .ci/run -m slow`."""
    schedule_converges(replica_count, shared_items, operations)


def schedule_converges(replica_count, shared_items, operations):
    """Every replica ends with the same heads, the same visible state and digest, and every
    revision anyone wrote; no item is left needing a merge."""
    replicas = make_replicas(replica_count)
    made = []
    # a few items every device starts with, so concurrent edits of one item are common
    for n in range(shared_items):
        made.append(replicas[0].add(f"shared-{n}", {"username": "u", "password": "p"}).revision)
    for other in replicas[1:]:
        sync_pair(replicas[0], other)
    for op in operations:
        try:
            apply(replicas, op, made)
        except Conflict:
            pass
    converge(replicas)
    reference = replicas[0]
    views = reference.list_items() + reference.list_items(deleted=True)
    if any(v.conflict for v in views):
        event("a conflict was left for the person")
    if any(v.flags for v in views):
        event("an edit survived a concurrent delete")
    if any(len(r.parents) > 1 for r in reference.held_records().revisions):
        event("a merge revision was written")
    for replica in replicas[1:]:
        assert replica._store.head_ids() == reference._store.head_ids()
        assert visible_state(replica) == visible_state(reference)
        assert replica.state_digest().root == reference.state_digest().root
    # nothing is lost: every revision anyone wrote is in every replica's history
    everywhere = [{r.revision_id for r in replica.held_records().revisions} for replica in replicas]
    for revision in made:
        assert all(revision in held for held in everywhere)
    assert all(held == everywhere[0] for held in everywhere)
    # and no item is left with heads that still need merging
    for replica in replicas:
        for item_id in replica._store.items_with_several_heads():
            view = replica.find(str(item_id), deleted=None)
            graph_heads = replica._store.heads_of(item_id)
            merged = replica.items._merged(item_id, graph_heads, replica.vault_id)
            assert not merged.needs_merge_revision, view
