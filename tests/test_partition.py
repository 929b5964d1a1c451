"""Key partitioning must agree across processes: no salted hash()."""
import subprocess
import sys

from hypothesis import given, strategies as st

from cep.partition import Partitioner, partition_of


def test_partition_is_the_same_in_another_interpreter():
    keys = ["BTCUSDT", "ETHUSDT", "EURUSD", "NZDUSD", 42]
    here = [partition_of(k, 4) for k in keys]
    code = f"from cep.partition import partition_of; print([partition_of(k, 4) for k in {keys!r}])"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123"}).stdout.strip()
    assert there == str(here)


@given(st.text(), st.integers(1, 16))
def test_partition_is_in_range_and_cached_value_agrees(key, partitions):
    index = partition_of(key, partitions)
    assert 0 <= index < partitions
    assert Partitioner(partitions)(key) == index
