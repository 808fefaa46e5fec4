//! Prints what the streams say about three containers: an idle one and a
//! busy one (three `stats()` samples each, as JSON), and one that allocates
//! past its memory limit (its `events()` until the end).
//!
//! ```sh
//! cargo run -p berth --example observe   # as root
//! ```

use std::time::Duration;

use berth::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder, Spec};
use berth::{Bundle, Config, Container, CreateOptions, Runtime, Stdio};
use futures::StreamExt;

fn spec(rootfs: &std::path::Path, script: &str) -> Spec {
    let mut spec = berth_fixtures::bundle::spec(&["sh".into(), "-c".into(), script.into()]);
    let mut root = spec.root().clone().unwrap();
    root.set_path(rootfs.to_path_buf());
    spec.set_root(Some(root));
    spec
}

async fn start(rt: &Runtime, id: &str, spec: Spec) -> anyhow::Result<Container> {
    let mut opts = CreateOptions::default();
    opts.stdout = Stdio::Null;
    opts.stderr = Stdio::Null;
    let id = format!("{id}-{}", std::process::id());
    Ok(rt
        .create_with(&id, Bundle::new(std::env::temp_dir(), spec)?, opts)
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rootfs = berth_fixtures::rootfs::shared()?;
    let rt = Runtime::new({
        let mut config = Config::default();
        config.root = "/run/berth-observe".into();
        config.cgroup_parent = "berth-observe".into();
        config
    })
    .await?;

    for (name, script) in [("idle", "sleep 10"), ("busy", "while :; do :; done")] {
        let ctr = start(&rt, name, spec(&rootfs, script)).await?;
        ctr.start().await?;
        let samples = ctr.stats(Duration::from_millis(100)).take(3);
        let samples: Vec<_> = samples.collect().await;
        for s in samples {
            println!("{name}: {}", serde_json::to_string(&s?)?);
        }
        ctr.force_delete().await?;
    }

    let mut oom = spec(&rootfs, "exec tail /dev/zero");
    let memory = LinuxMemoryBuilder::default()
        .limit(16 << 20)
        .swap(16 << 20)
        .build()?;
    let mut linux = oom.linux().clone().unwrap_or_default();
    linux.set_resources(Some(
        LinuxResourcesBuilder::default().memory(memory).build()?,
    ));
    oom.set_linux(Some(linux));
    let ctr = start(&rt, "oom", oom).await?;
    let mut events = ctr.events();
    ctr.start().await?;
    while let Some(event) = events.next().await {
        println!("oom: {:?}", event?);
    }
    ctr.delete().await?;
    let _ = std::fs::remove_dir(&rt.config().root);
    Ok(())
}
