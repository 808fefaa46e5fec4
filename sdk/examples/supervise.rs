//! Supervises a few containers from one tokio program: each with its own
//! limits, a live table of their usage from `stats()` streams, OOM and exit
//! events from `events()` as they happen, and a restart (up to a limit) of
//! any container that exits non-zero.
//!
//! ```sh
//! cargo run -p berth --example supervise   # as root
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth::oci_spec::runtime::{LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, Spec};
use berth::Stats;
use berth::{Bundle, Config, CreateOptions, Event, Runtime, Stdio};
use futures::StreamExt;

const MAX_RESTARTS: u32 = 2;

/// A container to supervise: a name, a script, and a memory limit.
struct Job {
    name: &'static str,
    script: &'static str,
    memory: i64,
}

const JOBS: [Job; 3] = [
    Job {
        name: "steady",
        script: "sleep 3",
        memory: 32 << 20,
    },
    Job {
        name: "hungry",
        script: "head -c 100m /dev/zero | tail",
        memory: 16 << 20,
    },
    Job {
        name: "flaky",
        script: "sleep 1; exit 3",
        memory: 32 << 20,
    },
];

fn spec(rootfs: &std::path::Path, job: &Job) -> Spec {
    let mut spec = berth_fixtures::bundle::spec(&["sh".into(), "-c".into(), job.script.into()]);
    let mut root = spec.root().clone().unwrap();
    root.set_path(rootfs.to_path_buf());
    spec.set_root(Some(root));
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(job.memory)
                .swap(job.memory)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(32).build().unwrap())
        .build()
        .unwrap();
    let mut linux = spec.linux().clone().unwrap();
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    spec
}

/// Runs `job` until it succeeds or has been restarted `MAX_RESTARTS` times,
/// publishing its latest stats sample in `table`.
async fn supervise(
    rt: Runtime,
    bundle: Bundle,
    name: &'static str,
    table: Arc<Mutex<BTreeMap<String, Stats>>>,
) {
    for attempt in 0..=MAX_RESTARTS {
        let id = format!("{name}-{}-{attempt}", std::process::id());
        let mut opts = CreateOptions::default();
        opts.stdout = Stdio::Null;
        opts.stderr = Stdio::Null;
        let ctr = match rt.create_with(&id, bundle.clone(), opts).await {
            Ok(c) => c,
            Err(e) => return eprintln!("{name}: {e}"),
        };
        let mut events = ctr.events();
        let mut stats = ctr.stats(Duration::from_millis(250));
        if let Err(e) = ctr.start().await {
            eprintln!("{name}: {e}");
            let _ = ctr.force_delete().await;
            return;
        }
        let table = table.clone();
        let sampler = tokio::spawn(async move {
            while let Some(Ok(s)) = stats.next().await {
                table.lock().unwrap().insert(name.to_string(), s);
            }
        });
        let mut status = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Oom) => println!("{name}: OOM kill"),
                Ok(Event::Exited(s)) => status = Some(s),
                Ok(other) => println!("{name}: {other:?}"),
                Err(e) => eprintln!("{name}: {e}"),
            }
        }
        let _ = sampler.await;
        let _ = ctr.delete().await;
        match status {
            Some(s) if s.success() => return println!("{name}: done"),
            Some(s) => println!("{name}: {s} (attempt {})", attempt + 1),
            None => return,
        }
    }
    println!("{name}: giving up after {MAX_RESTARTS} restarts");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rootfs = berth_fixtures::rootfs::shared()?;
    let rt = Runtime::new({
        let mut config = Config::default();
        config.root = "/run/berth-supervise".into();
        config.cgroup_parent = "berth-supervise".into();
        config
    })
    .await?;
    let table = Arc::new(Mutex::new(BTreeMap::new()));
    let mut tasks = Vec::new();
    for job in &JOBS {
        let bundle = Bundle::new(std::env::temp_dir(), spec(&rootfs, job))?;
        tasks.push(tokio::spawn(supervise(
            rt.clone(),
            bundle,
            job.name,
            table.clone(),
        )));
    }
    let printer = {
        let table = table.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                for (name, s) in table.lock().unwrap().iter() {
                    println!(
                        "  {name:8} cpu {:>6} µs  mem {:>6} KiB / {:>6} KiB  pids {}",
                        s.cpu.usage.total / 1000,
                        s.memory.usage.usage / 1024,
                        s.memory.usage.limit / 1024,
                        s.pids.current
                    );
                }
            }
        })
    };
    for t in tasks {
        t.await?;
    }
    printer.abort();
    let _ = std::fs::remove_dir(&rt.config().root);
    Ok(())
}
