"""flowc_run_gang and flowc_gang_barrier (Note [loops run by a gang] in runtime/native/flowc_rt.c), from C.

A small C program links libflowc_rt and drives gangs directly: every member passes each barrier the
same number of times; an error reported by one member at barrier k stops every member at k, even when
another member sets the slot again right after passing it; a run whose members wait for a lost core
for more than a quarter of its time makes the next runs run on their caller alone, and the runs after
those form gangs again. Each case is a child process with two pool threads.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from flowc.runtime.build import NATIVE_DIR, find_c_compiler
from flowc.runtime.loader import support

PROGRAM = r"""
#include "flowc_rt.h"
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_long passed[4];
static int64_t slot;

/* Every member passes 1000 barriers, adding to its own count between them. */
static void count(void *context, struct flowc_gang *gang, int64_t member, int64_t members) {
    (void)context; (void)members;
    for (int i = 0; i < 1000; i++) {
        if (flowc_gang_barrier(gang, member, NULL)) return;
        atomic_fetch_add(&passed[member], 1);
    }
}

/* After passing barrier 4, member `failing` sets the slot (its next kernel failed) while the other
 * may still be leaving barrier 4. Both must stop at barrier 5. */
static int failing;

static atomic_long gang_size;

static void fail(void *context, struct flowc_gang *gang, int64_t member, int64_t members) {
    (void)context;
    atomic_store(&gang_size, members);
    for (int i = 1; i <= 10; i++) {
        if (flowc_gang_barrier(gang, member, &slot)) {
            atomic_store(&passed[member], i);
            return;
        }
        if (member == failing && i == 4) slot = 9;
    }
    atomic_store(&passed[member], 100);
}

/* Member 1 sleeps 2 ms before each barrier: a member that lost its core. */
static void slow(void *context, struct flowc_gang *gang, int64_t member, int64_t members) {
    (void)context;
    atomic_store(&passed[0], members);
    for (int i = 0; i < 10; i++) {
        if (member == 1) {
            struct timespec pause = {0, 2000000};
            nanosleep(&pause, NULL);
        }
        flowc_gang_barrier(gang, member, NULL);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    flowc_set_num_threads(2);
    if (strcmp(argv[1], "count") == 0) {
        flowc_run_gang(count, NULL, 1);
        printf("%ld %ld\n", atomic_load(&passed[0]), atomic_load(&passed[1]));
    } else if (strcmp(argv[1], "fail") == 0) {
        for (int run = 0; run < 200; run++) {
            slot = 0;
            failing = run % 2;
            atomic_store(&passed[0], 0);
            atomic_store(&passed[1], 0);
            flowc_run_gang(fail, NULL, 1);
            /* A loaded machine may make a run a gang of one (backoff): member 0 alone then stops only
             * where it failed itself. */
            long alone = atomic_load(&gang_size) == 1, want0 = alone && failing == 1 ? 100 : 5;
            if (atomic_load(&passed[0]) != want0 || atomic_load(&passed[1]) != (alone ? 0 : 5)) {
                printf("run %d: member 0 stopped at %ld, member 1 at %ld\n", run, atomic_load(&passed[0]),
                       atomic_load(&passed[1]));
                return 1;
            }
        }
        printf("ok\n");
    } else {
        flowc_run_gang(slow, NULL, 1);
        printf("%d", flowc_gang_backoff());
        for (int run = 0; run < 33; run++) {
            flowc_run_gang(slow, NULL, 1);
            if (run == 0 || run == 31 || run == 32) printf(" %ld", atomic_load(&passed[0]));
        }
        printf("\n");
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("gang")
    source, binary = folder / "gang.c", folder / "gang"
    source.write_text(PROGRAM)
    library = support()._name
    subprocess.run([*find_c_compiler(), "-O2", "-std=c11", "-I", NATIVE_DIR, str(source), library, "-pthread",
                    f"-Wl,-rpath,{os.path.dirname(library)}", "-o", str(binary)], check=True)
    return str(binary)


def run(program: str, case: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "FLOWC_NUM_THREADS"}
    return subprocess.run([program, case], check=True, capture_output=True, text=True, timeout=120, env=env).stdout


def test_every_member_passes_every_barrier(program: str) -> None:
    assert run(program, "count").split() == ["1000", "1000"]


def test_an_error_stops_every_member_at_the_same_barrier(program: str) -> None:
    """One member sets the slot right after passing barrier 4, while the other may still be leaving it:
    a member judging from the slot after the barrier would stop at 4 while the other waits at 5 forever.
    (200 runs; a run the backoff makes a gang of one is checked as such.)"""
    assert run(program, "fail").strip() == "ok"


def test_a_gang_that_waits_for_cores_backs_off(program: str) -> None:
    """After a run that waited most of its time, the next 32 runs are gangs of one, the 33rd a gang again."""
    backoff, first, last_alone, again = run(program, "slow").split()
    assert (backoff, first, last_alone, again) == ("32", "1", "1", "2")
