#!/usr/bin/env python3
"""Where the time of `berth run` goes, from `strace -f -ttt -T` of N runs.

Usage (as root, after `cargo build --release -p berth-cli` and
`cargo xtask bench-compare`, which prepares the bundle):

    benches/scripts/profile_run.py [N] [BERTH] [BUNDLE]

Each run is traced; the trace is cut at syscalls that mark the steps of
`run` (see SEGMENTS) and the median of each segment over the N runs is
printed as a Markdown table. Only the marker calls are traced (the kernel
filters the rest), but each traced call still costs a round trip to
strace: read the shares more than the absolute values.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
BERTH = sys.argv[2] if len(sys.argv) > 2 else "target/release/berth"
BUNDLE = sys.argv[3] if len(sys.argv) > 3 else "target/bench-compare/bundle"

# Only the marker system calls are traced (filtered in the kernel with
# --seccomp-bpf), so the others run at full speed.
TRACED = "trace=execve,mkdir,clone3,pivot_root,rmdir,exit_group,write,read,openat"

LINE = re.compile(r"^(\d+)\s+([\d.]+)\s+(.*)$")


def markers(lines, root, cid):
    """Timestamps of the marker syscalls of one traced run."""
    main_pid = None
    child = None
    m = {}

    def first(key, t):
        m.setdefault(key, t)

    for line in lines:
        g = LINE.match(line)
        if not g:
            continue
        pid, t, call = int(g.group(1)), float(g.group(2)), g.group(3)
        if main_pid is None:
            main_pid = pid
            first("exec", t)
        if child is None and call.startswith("clone3(") and "CLONE_NEWNS" in call:
            first("clone", t)
        if child is not None and pid == child:
            first("child0", t)
            if '"g", 1) = 1' in call:
                first("child_go", t)
            if call.startswith("pivot_root("):
                first("pivot", t)
            if call.startswith("execve("):
                first("execve", t)
            if "+++ exited" in call:
                first("exited", t)
            continue
        if call.startswith("<... clone3 resumed>") and "clone" in m and child is None:
            ret = re.search(r"= (\d+)", call)
            if ret:
                child = int(ret.group(1))
        if call.startswith("clone3(") and "CLONE_NEWNS" in call and "= " in call:
            ret = re.search(r"= (\d+) <", call)
            if ret:
                child = int(ret.group(1))
        if call.startswith(f'mkdir("{root}"'):
            first("runtime", t)
        if call.startswith(f'mkdir("{root}/{cid}"'):
            first("statedir", t)
        if call.startswith('mkdir("/sys/fs/cgroup/'):
            first("cgroup", t)
        if call.startswith("write(") and ', "g", 1)' in call:
            first("go", t)
        if call.startswith("openat(") and "exec.fifo" in call and "O_WRONLY" in call:
            first("start", t)
        if call.startswith('rmdir("/sys/fs/cgroup/'):
            first("delete", t)
        if call.startswith("exit_group("):
            first("exit_group", t)
        if "+++ exited" in call and pid == main_pid:
            first("end", t)
    return m


SEGMENTS = [
    ("CLI start-up (exec, dynamic linking, clap, tokio)", "exec", "runtime"),
    ("bundle load (config.json) + spec → plan", "runtime", "statedir"),
    ("state dir, spec copy, exec FIFO", "statedir", "cgroup"),
    ("cgroup create (11 v1 hierarchies + unified) and apply", "cgroup", "clone"),
    ("clone3 (all namespaces, CLONE_VM) until the child runs", "clone", "child0"),
    ("parent after clone: cgroup.procs ×12, /proc stat, state.json, go", "child0", "go"),
    ("child: mounts, devices, up to pivot_root", "child_go", "pivot"),
    ("child: pivot_root … caps, then CREATED; parent: start (state, FIFO)", "pivot", "start"),
    ("start → execve of /bin/true", "start", "execve"),
    ("/bin/true runs and exits", "execve", "exited"),
    ("reap (pidfd), state.json → first cgroup rmdir", "exited", "delete"),
    ("delete: cgroup rmdir ×12 (+parents), state dir", "delete", "exit_group"),
    ("process exit", "exit_group", "end"),
    ("total", "exec", "end"),
]


def main():
    root = tempfile.mkdtemp(prefix="berth-profile-", dir="/run")
    samples = {name: [] for name, _, _ in SEGMENTS}
    try:
        for i in range(N):
            cid = f"prof{i}"
            with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
                subprocess.run(
                    ["strace", "-f", "--seccomp-bpf", "-e", TRACED, "-ttt", "-T",
                     "-o", out.name, BERTH,
                     "--root", root, "run", "--bundle", BUNDLE, cid],
                    check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                )
                m = markers(out.read().splitlines(), root, cid)
            for name, a, b in SEGMENTS:
                if a in m and b in m:
                    samples[name].append((m[b] - m[a]) * 1e3)
    finally:
        os.rmdir(root)
    print(f"| step of `berth run` (strace, median of {N}) | ms | share |")
    print("|---|---|---|")
    total = statistics.median(samples["total"]) if samples["total"] else float("nan")
    for name, _, _ in SEGMENTS:
        v = samples[name]
        if not v:
            print(f"| {name} | – | – |")
            continue
        med = statistics.median(v)
        print(f"| {name} | {med:.2f} | {100 * med / total:.0f}% |")


if __name__ == "__main__":
    main()
