//! A QEMU smoke boot of one matrix cell: busybox-static, the resolved modules and
//! a shell `/init` that loads them, mounts cgroups in the cell's mode, prints
//! markers on the serial console and powers off.
//!
//! `cargo run --release -p berth-vm-tests --example boot_smoke -- [6.1] [v2] [vmlinux|vmlinuz]`
//!
//! Needs `qemu-system-x86_64` (apt package `qemu-system-x86`) and the kernel in
//! the cache (see the `fetch_kernels` example); fetches `busybox-static` from
//! bookworm through the private apt setup.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_vm_tests::initramfs::{self, Attr, CpioWriter};
use berth_vm_tests::kernels::{self, AptRoot, AptSources};
use berth_vm_tests::modules::{ModuleTree, GUEST_MODULES};
use berth_vm_tests::{default_cache_dir, not_applicable, Cell, CgroupMode, KernelSeries};

const APPLETS: &[&str] = &[
    "sh", "mount", "umount", "mkdir", "cat", "echo", "ls", "insmod", "poweroff", "uname", "grep",
    "ip", "sleep", "awk", "head", "tr", "sed", "dmesg", "true", "wc",
];

fn init_script(cell: Cell, modules: &[String]) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sys /sys\n\
         mount -t devtmpfs dev /dev 2>/dev/null\n\
         echo BERTH-BOOTED $(uname -r)\n",
    );
    for m in modules {
        s += &format!("insmod /modules/{m}.ko || echo BERTH-INSMOD-FAILED {m}\n");
    }
    match cell.cgroup {
        CgroupMode::V2 => {
            s += "mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo BERTH-CGROUP2 $(cat /sys/fs/cgroup/cgroup.controllers)\n";
        }
        CgroupMode::V1 => {
            s += "mount -t tmpfs cgroup /sys/fs/cgroup\n\
                  ok=; failed=\n\
                  for c in $(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups); do\n\
                    mkdir /sys/fs/cgroup/$c\n\
                    if mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c 2>/dev/null; then ok=\"$ok $c\"; else failed=\"$failed $c\"; fi\n\
                  done\n\
                  echo BERTH-CGROUP1 mounted:$ok\n\
                  echo BERTH-CGROUP1 failed:$failed\n\
                  echo BERTH-PROC-CGROUPS $(awk 'NR > 1 { print $1 }' /proc/cgroups)\n";
        }
    }
    s += "grep -q overlay /proc/filesystems && echo BERTH-OVERLAY\n\
          grep -q 9p /proc/filesystems && echo BERTH-9P\n\
          ip link add v0 type veth peer name v1 && echo BERTH-VETH\n\
          ip link add br0 type bridge && echo BERTH-BRIDGE\n\
          echo BERTH-DONE\n\
          poweroff -f\n";
    s
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let series: KernelSeries = args.first().map_or("6.1", String::as_str).parse()?;
    let mode: CgroupMode = args.get(1).map_or("v2", String::as_str).parse()?;
    let use_vmlinux = args.get(2).map_or("vmlinux", String::as_str) == "vmlinux";
    let cell = Cell {
        kernel: series,
        cgroup: mode,
    };
    let cache = default_cache_dir();
    let kernel = kernels::cached(&cache, series)?
        .ok_or("kernel not in the cache: run the fetch_kernels example first")?;

    let t = Instant::now();
    let apt = AptRoot::create(&cache, AptSources::for_series(&KernelSeries::ALL))?;
    apt.update_if_older_than(Duration::from_secs(24 * 3600))?;
    let index = apt.index(&|n| n == "busybox-static")?;
    let busybox_root =
        kernels::fetch_package(&apt, &index, "busybox-static", &["bookworm"], &cache)?;
    let busybox = busybox_root.join("bin/busybox");
    println!("busybox {} ({:?})", busybox.display(), t.elapsed());

    let t = Instant::now();
    let tree = ModuleTree::open(&kernel.modules_dir)?;
    let plan = tree.resolve(GUEST_MODULES)?;
    let names: Vec<String> = plan.modules.iter().map(|m| m.name.clone()).collect();

    // Base: busybox and modules, gzip-compressed.
    let dir = cache.join("smoke");
    std::fs::create_dir_all(&dir)?;
    let base = dir.join(format!("base-{}.cpio.gz", kernel.release));
    let gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(&base)?),
        flate2::Compression::fast(),
    );
    let mut w = CpioWriter::new(gz);
    for d in ["proc", "sys", "sys/fs/cgroup", "dev", "tmp", "modules"] {
        w.dir(d, Attr::mode(0o755))?;
    }
    w.char_device("dev/console", Attr::mode(0o600), 5, 1)?;
    w.char_device("dev/null", Attr::mode(0o666), 1, 3)?;
    w.host_file("bin/busybox", Attr::mode(0o755), &busybox)?;
    for a in APPLETS {
        w.symlink(&format!("bin/{a}"), "busybox")?;
    }
    for m in &plan.modules {
        w.file(
            &format!("modules/{}.ko", m.name),
            Attr::mode(0o644),
            &tree.read(&m.name)?,
        )?;
    }
    w.finish()?.finish()?.flush()?;

    // Per run: the init of this cell, uncompressed, appended.
    let run = dir.join(format!("run-{cell}.cpio").replace('/', "-"));
    let mut w = CpioWriter::new(std::fs::File::create(&run)?);
    w.file(
        "init",
        Attr::mode(0o755),
        init_script(cell, &names).as_bytes(),
    )?;
    w.finish()?;
    let initrd = dir.join("initrd");
    initramfs::concat(&[&base, &run], &initrd)?;
    println!(
        "initramfs: base {} bytes + run {} bytes, {} modules {:?} ({:?})",
        std::fs::metadata(&base)?.len(),
        std::fs::metadata(&run)?.len(),
        names.len(),
        names,
        t.elapsed()
    );

    let image = if use_vmlinux {
        kernel.ensure_vmlinux()?
    } else {
        kernel.vmlinuz.clone()
    };
    let t = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel", "tcg", "-m", "512", "-smp", "1", "-display", "none",
        ])
        .args([
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
            "-nodefaults",
        ])
        .arg("-kernel")
        .arg(&image)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut markers = Vec::new();
    let mut first_marker = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("  | {line}");
        if line.starts_with("BERTH-") {
            first_marker.get_or_insert_with(|| t.elapsed());
            markers.push(line);
        }
    }
    let status = child.wait()?;
    let done = markers.iter().any(|m| m == "BERTH-DONE");
    println!(
        "cell {cell} ({}) booted {} in {:?} (first marker after {:?}), qemu {status}, verdict: {}",
        kernel.release,
        if use_vmlinux { "vmlinux" } else { "vmlinuz" },
        t.elapsed(),
        first_marker.unwrap_or_default(),
        if done { "reached BERTH-DONE" } else { "FAILED" }
    );
    if let Some(note) = not_applicable(&cell) {
        println!("not applicable here: {note}");
    }
    if !done {
        std::process::exit(1);
    }
    Ok(())
}
