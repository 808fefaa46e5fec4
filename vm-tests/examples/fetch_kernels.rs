//! Fetches the newest kernel of each series into the cache and reports what it
//! found, how long each phase took and how big everything is.
//!
//! `cargo run -p berth-vm-tests --example fetch_kernels -- [5.10,6.1,6.12,7.3]`
//! (default: all). Needs the network (Debian's mirrors) unless everything is cached.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_vm_tests::kernels::{self, AptRoot, AptSources};
use berth_vm_tests::modules::{ModuleTree, GUEST_MODULES};
use berth_vm_tests::{default_cache_dir, vmlinux, KernelSeries};

fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let series: Vec<KernelSeries> = match std::env::args().nth(1) {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => KernelSeries::ALL.to_vec(),
    };
    let cache = default_cache_dir();
    println!("cache: {}", cache.display());

    let t = Instant::now();
    let apt = AptRoot::create(&cache, AptSources::for_series(&series))?;
    let updated = apt.update_if_older_than(Duration::from_secs(3600))?;
    println!("apt-get update: {:?} (ran: {updated})", t.elapsed());

    let t = Instant::now();
    let index = apt.index(&|name| name.starts_with("linux-"))?;
    println!(
        "parsed lists: {} linux-* entries in {:?}",
        index.entries().len(),
        t.elapsed()
    );

    for s in series {
        println!("== {s}");
        let pkg = index.newest_kernel(s)?;
        let n = index.kernel_candidates(s).len();
        println!(
            "  newest of {n} candidates: {} {} ({})",
            pkg.image.package, pkg.image.version, pkg.image.codename
        );
        for d in &pkg.debs {
            println!("    {} {} {}", d.package, d.version, mb(d.size));
        }
        let t = Instant::now();
        apt.download(&pkg.debs, &cache.join("debs"))?;
        println!("  download {}: {:?}", mb(pkg.download_size()), t.elapsed());
        let t = Instant::now();
        let k = kernels::fetch(&apt, &pkg, &cache)?;
        println!(
            "  unpack: {:?}, {} on disk, release {}",
            t.elapsed(),
            mb(du(&k.root)),
            k.release
        );
        println!("  vmlinuz {}", k.vmlinuz.display());
        println!("  modules {}", k.modules_dir.display());
        let t = Instant::now();
        let out = k.ensure_vmlinux()?;
        let p = vmlinux::find_payload(&std::fs::read(&k.vmlinuz)?)?;
        println!(
            "  vmlinux: {:?} payload, {} -> {} in {:?}",
            p.compression,
            mb(du(&k.vmlinuz)),
            mb(du(&out)),
            t.elapsed()
        );
        let t = Instant::now();
        let tree = ModuleTree::open(&k.modules_dir)?;
        let plan = tree.resolve(GUEST_MODULES)?;
        let order: Vec<&str> = plan.modules.iter().map(|m| m.name.as_str()).collect();
        println!(
            "  modules: {} files; insmod order {order:?}; built in {:?} ({:?})",
            tree.len(),
            plan.builtin,
            t.elapsed()
        );
        if let Ok(config) = k.read_config() {
            println!(
                "  v1 controllers not built: {:?}",
                kernels::v1_controllers_disabled(&config)
            );
        }
    }
    Ok(())
}
