//! `state`, `list`, `ps` and `events`.

use std::time::Duration;

use berth::Container;
use futures::StreamExt;
use serde_json::{json, Value};

use super::{runtime, Outcome};
use crate::cli::{Events, Global, List, Ps};
use crate::log::rfc3339;

/// runc's state JSON of one container.
async fn state_json(ctr: &Container) -> berth::Result<Value> {
    let s = ctr.state().await?;
    // berth's status, not the OCI one: it has runc's `paused`.
    let status = match ctr.status().await? {
        berth::Status::Stopped => s.status().to_string(),
        other => other.to_string(),
    };
    let mut v = json!({
        "ociVersion": s.version(),
        "id": s.id(),
        // runc prints 0 once the container has stopped.
        "pid": s.pid().unwrap_or(0),
        "status": status,
        "bundle": s.bundle(),
        "rootfs": ctr.rootfs().await?,
        "created": rfc3339(ctr.created().await?),
        "owner": "",
        "annotations": s.annotations().clone().unwrap_or_default(),
    });
    // berth's own: the container's bridge network, address and ports.
    if let Some(net) = berth_net::attachment(ctr)? {
        v["network"] = serde_json::to_value(net).unwrap_or_default();
    }
    Ok(v)
}

pub async fn state(g: &Global, id: &str) -> Outcome {
    let ctr = runtime(g).await?.get(id).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&state_json(&ctr).await?)?
    );
    Ok(0)
}

pub async fn list(g: &Global, l: List) -> Outcome {
    let rt = runtime(g).await?;
    let mut all = Vec::new();
    for s in rt.list().await? {
        if let Ok(ctr) = rt.get(s.id()).await {
            if let Ok(v) = state_json(&ctr).await {
                all.push(v);
            }
        }
    }
    if l.quiet {
        for v in &all {
            println!("{}", v["id"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    match l.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&all)?),
        "table" => {
            println!(
                "{:<12} {:<10} {:<10} {:<40} {:<20} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for v in &all {
                println!(
                    "{:<12} {:<10} {:<10} {:<40} {:<20} root",
                    v["id"].as_str().unwrap_or_default(),
                    v["pid"],
                    v["status"].as_str().unwrap_or_default(),
                    v["bundle"].as_str().unwrap_or_default(),
                    v["created"].as_str().unwrap_or_default(),
                );
            }
        }
        other => return Err(format!("unknown format {other:?} (table or json)").into()),
    }
    Ok(0)
}

pub async fn ps(g: &Global, p: Ps) -> Outcome {
    let ctr = runtime(g).await?.get(&p.id).await?;
    let pids = ctr.pids().await?;
    match p.format.as_str() {
        "json" => {
            println!("{}", serde_json::to_string(&pids)?);
            Ok(0)
        }
        "table" => {
            // As runc: ps(1) of the host, keeping the header and the lines
            // whose PID column is the container's.
            let args = if p.ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                p.ps_args
            };
            let out = std::process::Command::new("ps").args(&args).output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or("ps output has no PID column")?;
            println!("{header}");
            for line in lines {
                let pid = line
                    .split_whitespace()
                    .nth(col)
                    .and_then(|s| s.parse::<i32>().ok());
                if pid.is_some_and(|pid| pids.contains(&pid)) {
                    println!("{line}");
                }
            }
            Ok(0)
        }
        other => Err(format!("unknown format {other:?} (table or json)").into()),
    }
}

pub(super) fn parse_interval(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad interval {s:?}"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(60 * n),
        _ => return Err(format!("bad interval {s:?} (use 500ms, 5s, 1m)")),
    })
}

/// One stats event in runc's shape, from the container's cgroup.
async fn stats_event(ctr: &Container) -> berth::Result<Value> {
    Ok(json!({
        "type": "stats",
        "id": ctr.id(),
        "data": ctr.stats_now().await?,
    }))
}

/// One lifecycle event in runc's shape (`{"type":"oom","id":...}`); berth
/// adds `started`, `paused`, `resumed` and `exit` (with the status).
fn event_json(id: &str, event: &berth::Event) -> Option<Value> {
    let kind = match event {
        berth::Event::Oom => "oom",
        berth::Event::Started => "started",
        berth::Event::Paused => "paused",
        berth::Event::Resumed => "resumed",
        berth::Event::Exited(status) => {
            return Some(json!({
                "type": "exit",
                "id": id,
                "data": {"status": status.code(), "signal": status.signal()},
            }))
        }
        _ => return None,
    };
    Some(json!({"type": kind, "id": id}))
}

pub async fn events(g: &Global, e: Events) -> Outcome {
    let ctr = runtime(g).await?.get(&e.id).await?;
    if e.stats {
        println!("{}", stats_event(&ctr).await?);
        return Ok(0);
    }
    let interval = e.interval.as_deref().map(parse_interval).transpose()?;
    let mut events = ctr.events();
    let mut stats = interval.map(|i| ctr.stats(i));
    loop {
        let sample = async {
            match stats.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    if let Some(v) = event_json(ctr.id(), &event) {
                        println!("{v}");
                    }
                }
                // Exited, but its status died with a creator that did not
                // record it (a runc-style create): nothing more to say.
                Some(Err(berth::Error::ExitStatusUnknown { .. })) if ctr.status().await? == berth::Status::Stopped => {
                    return Ok(0)
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(0),
            },
            Some(sample) = sample => {
                let v = json!({"type": "stats", "id": ctr.id(), "data": sample?});
                println!("{v}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_interval;
    use std::time::Duration;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_interval("fast").is_err());
    }
}
