//! Image commands: `pull`, `push`, `images`, `rmi`, `commit`, `import`, and
//! `create`/`run --image`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use berth::{Container, Runtime};
use berth_image::{ImageOverrides, ImageStore, PullOptions, SignaturePolicy};
use futures::StreamExt;

use super::{runtime, Outcome};
use crate::cli::{Commit, CreateFlags, Global, Images, Import, Pull, Rmi};

/// `berth-images`' image commands: run here.
#[derive(Debug)]
pub struct InProcess;

impl super::Images for InProcess {
    const IN_PROCESS: bool = true;

    async fn command(g: &Global, command: crate::cli::Command) -> Outcome {
        use crate::cli::Command;
        match command {
            Command::Pull(c) => pull(g, c, false).await,
            Command::Push(c) => pull(g, c, true).await,
            Command::Images(c) => images(g, c).await,
            Command::Rmi(c) => rmi(g, c).await,
            Command::Commit(c) => commit(g, c).await,
            Command::Import(c) => import(g, c).await,
            _ => Err("not an image command".into()),
        }
    }

    /// Creates a container from a stored image.
    async fn create(
        rt: &Runtime,
        flags: &CreateFlags,
        id: &str,
        image: &str,
        command: &[String],
        preserved: Vec<std::os::fd::OwnedFd>,
        log: Option<berth::LogConfig>,
    ) -> Result<Container, Box<dyn std::error::Error>> {
        if flags.console_socket.is_some() && !flags.tty {
            return Err("--console-socket given without --tty".into());
        }
        let mut overrides = ImageOverrides::default();
        overrides.cmd = (!command.is_empty()).then(|| command.to_vec());
        overrides.entrypoint = flags.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            }
        });
        overrides.env = flags.env.clone();
        overrides.workdir = flags.workdir.clone();
        overrides.user = flags.user.clone();
        overrides.terminal = flags.tty;
        let opts = super::create::options(flags, preserved, log);
        Ok(berth_image::create_container(rt, id, image, overrides, opts).await?)
    }
}

/// The image store under `--root`, with this binary as its helper
/// without root.
fn store(g: &Global) -> berth_image::Result<ImageStore> {
    let store = ImageStore::open(super::config(g).root)?;
    Ok(match super::images_binary() {
        Ok(helper) => store.with_helper(helper),
        Err(_) => store,
    })
}

/// `pull`, or with `push` the other way; both show per-blob progress.
async fn pull(g: &Global, p: Pull, push: bool) -> Outcome {
    let store = store(g)?;
    let credentials = match &p.creds {
        Some(c) => {
            let (u, pw) = c.split_once(':').ok_or("--creds must be user:password")?;
            Some((u.to_string(), pw.to_string()))
        }
        None => None,
    };
    let keys = p
        .verify_key
        .iter()
        .map(|k| {
            std::fs::read_to_string(k).map_err(|e| format!("--verify-key {}: {e}", k.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut opts = PullOptions::default();
    opts.insecure = p.insecure;
    opts.credentials = credentials;
    opts.signatures = {
        let mut signature_policy = SignaturePolicy::default();
        signature_policy.require = !keys.is_empty();
        signature_policy.keys = keys;
        signature_policy
    };
    let mut pull = if push {
        store.push(&p.reference, opts)?
    } else {
        store.pull(&p.reference, opts)?
    };
    let tty = std::io::stderr().is_terminal();
    let mut layers: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    {
        let mut progress = pull.progress();
        while let Some(ev) = progress.next().await {
            if p.quiet {
                continue;
            }
            let done = ev.done == ev.total;
            let before = layers.insert(ev.digest.clone(), (ev.done, ev.total));
            if tty {
                eprint!("\r{}", bar(&ev.digest, ev.done, ev.total));
                if done {
                    eprintln!();
                }
            } else if done && before.is_none_or(|(d, _)| d != ev.total) {
                eprintln!("{}", bar(&ev.digest, ev.done, ev.total));
            }
        }
    }
    let digest = pull.finish().await?;
    println!("{digest}");
    Ok(0)
}

/// `sha256:0123456789ab [=========>      ]  1.2/3.4 MB`
fn bar(digest: &str, done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH) as usize;
    let short = &digest[..digest.len().min(19)];
    format!(
        "{short} [{}{}] {:.1}/{:.1} MB",
        "=".repeat(filled),
        " ".repeat(WIDTH as usize - filled),
        done as f64 / 1e6,
        total as f64 / 1e6
    )
}

async fn images(g: &Global, i: Images) -> Outcome {
    let list = store(g)?.list()?;
    let mut out = std::io::stdout().lock();
    match (i.quiet, i.format.as_str()) {
        (true, _) => {
            for img in &list {
                writeln!(out, "{}", img.reference)?;
            }
        }
        (false, "json") => {
            let v: Vec<_> = list
                .iter()
                .map(|img| {
                    serde_json::json!({
                        "reference": img.reference,
                        "digest": img.digest.to_string(),
                        "size": img.size,
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        (false, "table") => {
            writeln!(out, "{:<50} {:<20} {:>10}", "REFERENCE", "DIGEST", "SIZE")?;
            for img in &list {
                writeln!(
                    out,
                    "{:<50} {:<20} {:>9.1}M",
                    img.reference,
                    &img.digest.digest()[..12],
                    img.size as f64 / 1e6
                )?;
            }
        }
        (false, other) => return Err(format!("unknown format {other:?} (table or json)").into()),
    }
    Ok(0)
}

async fn rmi(g: &Global, r: Rmi) -> Outcome {
    let store = store(g)?;
    for reference in &r.references {
        store.untag(reference)?;
        println!("untagged {reference}");
    }
    let report = berth::blocking::run(move || store.gc()).await??;
    println!(
        "removed {} blobs ({:.1} MB) and {} layers",
        report.blobs,
        report.bytes as f64 / 1e6,
        report.layers
    );
    Ok(0)
}

async fn commit(g: &Global, c: Commit) -> Outcome {
    let digest = berth_image::commit(&runtime(g).await?, &c.id, &c.reference).await?;
    println!("{digest}");
    Ok(0)
}

async fn import(g: &Global, i: Import) -> Outcome {
    let store = store(g)?;
    let name = store.import_layout(&i.dir, i.name.as_deref(), &i.reference)?;
    println!("{name}");
    Ok(0)
}
