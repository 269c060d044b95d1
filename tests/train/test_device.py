"""The CPU allocator setting the trainer makes: freed tensors' memory is reused, not faulted in anew."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

CHURN = textwrap.dedent("""
    import resource, torch
    from selcopy.train.device import keep_freed_memory

    def faults_of_churn():
        def churn():
            for _ in range(20):  # tensors of a few MB, allocated and freed as a training step does
                a, b = torch.ones(1 << 20), torch.ones(1 << 19)
                del a
                c = torch.ones(3 << 19)
                del b, c
        churn()
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        churn()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

    before = faults_of_churn()
    took = keep_freed_memory()
    print(before, took, faults_of_churn(), keep_freed_memory())
""")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a setting of glibc's malloc")
def test_keep_freed_memory_stops_page_faults_of_reallocated_tensors():
    # a fresh process: the setting is process-wide and other tests' trainers make it too
    out = subprocess.run([sys.executable, "-c", CHURN], capture_output=True, text=True, check=True).stdout.split()
    before, took, after, again = int(out[0]), out[1], int(out[2]), out[3]
    assert took == "True" and again == "True"
    assert before > 10_000  # 4 MiB = 1,024 pages, touched anew on every allocation by default
    assert after < before / 100
