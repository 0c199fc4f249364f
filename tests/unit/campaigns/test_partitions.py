"""Customer hash partitions: stable, and every contact in exactly one partition of a count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from martech.campaigns.partitions import Partition, partition_of

IDS = st.lists(st.text(min_size=1, max_size=40), unique=True, max_size=200)


def test_the_partition_of_a_contact_is_pinned():
    # The first 32 bits of sha256("c-1") are 0xa6f7ef47 = 2801266503: changing the hash moves contacts.
    assert partition_of("c-1", 2**32) == 2801266503
    assert partition_of("c-1", 4) == 2801266503 % 4
    assert [partition_of(f"c{i:03d}", 3) for i in range(6)] == [partition_of(f"c{i:03d}", 3) for i in range(6)]


@given(ids=IDS, count=st.integers(min_value=1, max_value=64))
def test_every_contact_is_in_exactly_one_partition(ids, count):
    parts = Partition.all(count)
    owners = {cid: [p.index for p in parts if cid in p] for cid in ids}
    assert all(len(o) == 1 for o in owners.values())
    assert all(o == [partition_of(cid, count)] for cid, o in owners.items())
    covered = [cid for p in parts for cid in ids if cid in p]
    assert sorted(covered) == sorted(ids)


@given(ids=IDS)
def test_one_partition_is_the_whole_run(ids):
    whole = Partition()
    assert whole.whole and whole.where("l.contact_id") == ""
    assert all(cid in whole for cid in ids)


@pytest.mark.parametrize(("index", "count"), [(0, 0), (4, 4), (-1, 2)])
def test_a_partition_outside_its_count_is_refused(index, count):
    with pytest.raises(ValueError, match="does not exist"):
        Partition(index, count)
    with pytest.raises(ValueError, match="at least 1"):
        partition_of("c-1", 0)
