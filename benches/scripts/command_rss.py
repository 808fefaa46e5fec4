#!/usr/bin/env python3
"""Peak RSS of the commands an OCI client calls for each container:
`create`, `start`, `state`, `kill`, `delete`, for berth, crun and runc.

Usage (as root, after `cargo xtask bench-compare`, which installs crun,
runc and GNU time and prepares the bundle, and `cargo xtask dist`):

    benches/scripts/command_rss.py [ROUNDS] [BERTH] [BUNDLE]

Each round runs, for each runtime in turn, `create` of a container running
`sleep`, `start`, `state`, `kill KILL` and `delete`, each under GNU time
(`%M`: the command's own peak RSS; GNU time is small, so the floor that
`execve` inherits from the spawner stays below every runtime). Printed, as
a Markdown table, the median and the maximum of each command over the
rounds, in KiB. On a hybrid host crun runs in a mount namespace without
`/sys/fs/cgroup/unified`, which it refuses (the same workaround as
`cargo xtask bench-compare`).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
BERTH = sys.argv[2] if len(sys.argv) > 2 else "target/dist/berth"
BUNDLE = sys.argv[3] if len(sys.argv) > 3 else "target/bench-compare/bundle"
COMMANDS = ["create", "start", "state", "kill", "delete"]


def hybrid():
    return os.path.ismount("/sys/fs/cgroup/unified")


def measured(runtime, root, args, hide_cgroup2):
    """Peak RSS (KiB) of `runtime --root root args...`."""
    with tempfile.NamedTemporaryFile(mode="r") as out:
        cmd = ["/usr/bin/time", "-o", out.name, "-f", "%M", runtime, "--root", root] + args
        if hide_cgroup2:
            script = 'umount -l /sys/fs/cgroup/unified && exec "$@"'
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return int(out.read().split()[-1])


def main():
    runtimes = [("berth", os.path.abspath(BERTH)), ("crun", "crun"), ("runc", "runc")]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = os.path.join(tmp, "bundle")
        os.mkdir(bundle)
        with open(os.path.join(BUNDLE, "config.json")) as f:
            config = json.load(f)
        config["process"]["args"] = ["sleep", "100000"]
        config["root"]["path"] = os.path.abspath(os.path.join(BUNDLE, config["root"]["path"]))
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        rss = {(r, c): [] for r, _ in runtimes for c in COMMANDS}
        roots = {r: f"/run/{r}-command-rss-{os.getpid()}" for r, _ in runtimes}
        try:
            for n in range(ROUNDS):
                for name, binary in runtimes:
                    cid = f"rss-{os.getpid()}-{n}"
                    hide = hybrid() and name == "crun"
                    steps = {
                        "create": ["create", "--bundle", bundle, cid],
                        "start": ["start", cid],
                        "state": ["state", cid],
                        "kill": ["kill", cid, "KILL"],
                        "delete": ["delete", "--force", cid],
                    }
                    for c in COMMANDS:
                        rss[(name, c)].append(measured(binary, roots[name], steps[c], hide))
        finally:
            # What a failed round left: its containers, then the roots.
            for name, binary in runtimes:
                left = subprocess.run(
                    [binary, "--root", roots[name], "list", "-q"],
                    capture_output=True,
                    text=True,
                ).stdout.split()
                for cid in left:
                    subprocess.run(
                        [binary, "--root", roots[name], "delete", "--force", cid],
                        capture_output=True,
                    )
                shutil.rmtree(roots[name], ignore_errors=True)

    print(f"Peak RSS in KiB, median (max) of {ROUNDS} rounds\n")
    print("| command | " + " | ".join(r for r, _ in runtimes) + " |")
    print("|---|" + "---:|" * len(runtimes))
    for c in COMMANDS:
        cells = [
            f"{statistics.median(rss[(r, c)]):.0f} ({max(rss[(r, c)])})" for r, _ in runtimes
        ]
        print(f"| `{c}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
