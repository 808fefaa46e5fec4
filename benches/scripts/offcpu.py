#!/usr/bin/env python3
"""Which kernel locks the tasks of a command wait on, and for how long.

Usage (as root, with `perf` installed; after
`cargo build --release -p berth-benches --examples`):

    benches/scripts/offcpu.py [--top N] [--all] [-- COMMAND...]

COMMAND defaults to the throughput example at 50 in flight. It runs under
`perf record -e sched:sched_switch -a -g`; every time a task leaves the CPU
to sleep, its kernel stack says where. The time until the same task runs
again is added to that place. Printed, as a Markdown table, the places with
the most time blocked, summed over all tasks of the machine (so a lock that
50 containers wait on at once counts 50 times): uninterruptible sleeps
(`D`: locks, grace periods, I/O) only, or with `--all` interruptible ones
too (idle workers, pipes, sockets).

Each place is the first kernel frames below the scheduler: for example
`register_nexthop_notifier < ops_init < setup_net < copy_net_ns` is a new
network namespace waiting for the RTNL mutex.
"""

import collections
import os
import re
import subprocess
import sys
import tempfile

DEFAULT = [
    "target/release/examples/throughput",
    "--in-flight",
    "50",
    "--count",
    "1000",
]

# Frames of the scheduler and of the generic sleeping primitives: the place
# is the first frame below them.
GENERIC = set(
    """__schedule schedule __traceiter_sched_switch schedule_preempt_disabled
    schedule_timeout io_schedule io_schedule_timeout percpu_rwsem_wait
    rwsem_down_write_slowpath rwsem_down_read_slowpath __mutex_lock.constprop.0
    __mutex_lock mutex_lock mutex_lock_killable mutex_lock_interruptible
    __wait_for_common wait_for_completion wait_for_completion_state
    wait_for_completion_killable schedule_hrtimeout_range_clock do_nanosleep
    futex_wait_queue futex_do_wait futex_wait __futex_wait do_futex
    __x64_sys_futex rtnl_lock rtnl_net_lock __rtnl_net_lock""".split()
)

HEADER = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<tid>\d+)\s+(?P<time>[\d.]+):\s+"
    r"prev_comm=.* prev_pid=(?P<prev>\d+) .*prev_state=(?P<state>\S+) "
    r"==> next_comm=.* next_pid=(?P<next>\d+)"
)


def task_class(comm):
    """kworker/u8:3-events -> kworker: one row for a pool of threads."""
    return re.sub(r"[/:].*$", "", comm)[:16]


def main():
    args = sys.argv[1:]
    top, everything = 25, False
    while args and args[0] != "--":
        flag = args.pop(0)
        if flag == "--top":
            top = int(args.pop(0))
        elif flag == "--all":
            everything = True
        else:
            sys.exit(__doc__)
    command = args[1:] if args else DEFAULT
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        subprocess.run(
            ["perf", "record", "-q", "-o", data, "-e", "sched:sched_switch", "-a", "-g", "--"]
            + command,
            check=True,
        )
        script = subprocess.run(
            ["perf", "script", "-i", data, "-F", "comm,tid,time,trace,ip,sym"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    asleep = {}  # tid -> (since, place)
    total = collections.Counter()
    count = collections.Counter()
    for block in script.split("\n\n"):
        lines = block.strip().split("\n")
        m = HEADER.match(lines[0]) if lines else None
        if not m:
            continue
        now = float(m["time"])
        woken = asleep.pop(m["next"], None)
        if woken:
            total[woken[1]] += now - woken[0]
            count[woken[1]] += 1
        state = m["state"]
        if state == "D" or (everything and state in ("S", "I")):
            frames = [l.split()[-1] for l in lines[1:] if l.strip()]
            place = " < ".join([f for f in frames if f not in GENERIC][:4])
            asleep[m["prev"]] = (now, (state, task_class(m["comm"]), place))

    print("| ms blocked | times | ms each | state | task | where |")
    print("|---:|---:|---:|---|---|---|")
    for key, seconds in total.most_common(top):
        state, task, place = key
        n = count[key]
        print(
            f"| {seconds * 1000:.0f} | {n} | {seconds * 1000 / n:.2f} "
            f"| {state} | {task} | `{place}` |"
        )


if __name__ == "__main__":
    main()
