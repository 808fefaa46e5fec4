//! `kill`, `delete`, `pause`, `resume` and `update`.

use berth::oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
};
use berth::Error;

use super::{parse_signal, runtime, Outcome};
use crate::cli::{Delete, Global, Kill, Update};

pub async fn kill(g: &Global, k: Kill) -> Outcome {
    let ctr = runtime(g).await?.get(&k.id).await?;
    let sig = parse_signal(&k.signal)?;
    let created = ctr.status().await? == berth::Status::Created;
    if k.all {
        ctr.kill_all(sig).await?;
    } else {
        ctr.kill(sig)?;
    }
    if created && sig == berth::Signal::KILL {
        // A created container dies at once: return when it is gone, so
        // that a `delete` right after sees it stopped. (Bounded: a process
        // in an uninterruptible sleep takes its time.)
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), ctr.wait()).await;
    }
    Ok(0)
}

pub async fn delete(g: &Global, d: Delete) -> Outcome {
    let rt = super::runtime_with_extensions(g).await?;
    let ctr = match rt.get(&d.id).await {
        Ok(c) => c,
        // As runc: forcing the delete of a container that is already gone
        // (or never finished being created) succeeds.
        Err(Error::NotFound(_)) if d.force => {
            let _ = std::fs::remove_dir_all(rt.config().root.join(&d.id));
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    if d.force {
        ctr.force_delete().await?;
    } else {
        ctr.delete().await?;
    }
    Ok(0)
}

pub async fn pause(g: &Global, id: &str, pause: bool) -> Outcome {
    let ctr = runtime(g).await?.get(id).await?;
    if pause {
        ctr.pause().await?;
    } else {
        ctr.resume().await?;
    }
    Ok(0)
}

pub async fn update(g: &Global, u: Update) -> Outcome {
    let ctr = runtime(g).await?.get(&u.id).await?;
    let mut res: LinuxResources = match &u.resources {
        Some(p) if p.as_os_str() == "-" => serde_json::from_reader(std::io::stdin())?,
        Some(p) => serde_json::from_slice(&std::fs::read(p)?)?,
        None => LinuxResources::default(),
    };
    if u.memory.is_some() || u.memory_reservation.is_some() || u.memory_swap.is_some() {
        let m = res.memory().unwrap_or_default();
        let mut b = LinuxMemoryBuilder::default();
        if let Some(v) = u.memory.or(m.limit()) {
            b = b.limit(v);
        }
        if let Some(v) = u.memory_reservation.or(m.reservation()) {
            b = b.reservation(v);
        }
        if let Some(v) = u.memory_swap.or(m.swap()) {
            b = b.swap(v);
        }
        res.set_memory(Some(b.build()?));
    }
    let cpu_flags = [
        u.cpu_shares.is_some(),
        u.cpu_period.is_some(),
        u.cpu_quota.is_some(),
        u.cpu_rt_period.is_some(),
        u.cpu_rt_runtime.is_some(),
        u.cpu_idle.is_some(),
        u.cpuset_cpus.is_some(),
        u.cpuset_mems.is_some(),
    ];
    if cpu_flags.contains(&true) {
        // The flags override the file's values, field by field.
        let mut c = res.cpu().clone().unwrap_or_default();
        if let Some(v) = u.cpu_shares {
            c.set_shares(Some(v));
        }
        if let Some(v) = u.cpu_period {
            c.set_period(Some(v));
        }
        if let Some(v) = u.cpu_quota {
            c.set_quota(Some(v));
        }
        if let Some(v) = u.cpu_rt_period {
            c.set_realtime_period(Some(v));
        }
        if let Some(v) = u.cpu_rt_runtime {
            c.set_realtime_runtime(Some(v));
        }
        if let Some(v) = u.cpu_idle {
            c.set_idle(Some(v));
        }
        if let Some(v) = &u.cpuset_cpus {
            c.set_cpus(Some(v.clone()));
        }
        if let Some(v) = &u.cpuset_mems {
            c.set_mems(Some(v.clone()));
        }
        res.set_cpu(Some(c));
    }
    if let Some(v) = u.pids_limit {
        res.set_pids(Some(LinuxPidsBuilder::default().limit(v).build()?));
    }
    if let Some(v) = u.blkio_weight {
        res.set_block_io(Some(LinuxBlockIoBuilder::default().weight(v).build()?));
    }
    ctr.update(&res).await?;
    Ok(0)
}
