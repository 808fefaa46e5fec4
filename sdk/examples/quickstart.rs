//! Starts one real container and prints what it sees.
//!
//! ```sh
//! cargo run --release -p berth --example quickstart
//! ```
//!
//! Needs root. The rootfs is made on the spot from Debian's busybox-static
//! when installed, else from the host's own binaries and their libraries.

use std::path::Path;

use berth::{Bundle, Config, CreateOptions, Runtime, Stdio};
use tokio::io::AsyncReadExt;

const SCRIPT: &str = r#"
echo "pid:       $$"
echo "hostname:  $(hostname)"
echo "user:      $(id)"
echo "interfaces:"; sed -n '3,$p' /proc/net/dev | cut -d: -f1 | sed 's/^ */  /'
echo "mounts:    $(wc -l < /proc/self/mountinfo)"
exit 7
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("berth-quickstart-")
        .tempdir()?;
    let rootfs = work.path().join("rootfs");
    println!("preparing a rootfs in {}", rootfs.display());
    berth_fixtures::rootfs::build(&rootfs)?;

    let mut spec = berth_fixtures::bundle::spec(&["sh".into(), "-c".into(), SCRIPT.into()]);
    spec.set_hostname(Some("quickstart".into()));
    let bundle = Bundle::new(work.path(), spec)?;

    let rt = Runtime::new({
        let mut config = Config::default();
        config.root = Path::new("/run/berth-quickstart").to_path_buf();
        config
    })
    .await?;
    let id = format!("quickstart-{}", std::process::id());
    let mut opts = CreateOptions::default();
    opts.stdout = Stdio::Piped;
    let ctr = rt.create_with(&id, bundle, opts).await?;
    println!("created {} (host pid {}), starting it", ctr.id(), ctr.pid());
    let mut out = ctr.take_stdout().expect("stdout is piped");
    ctr.start().await?;

    let mut text = String::new();
    out.read_to_string(&mut text).await?;
    let status = ctr.wait().await?;
    println!(
        "--- inside the container ---\n{}----------------------------",
        text
    );
    println!("exit status: {status}");
    ctr.delete().await?;
    let _ = std::fs::remove_dir(&rt.config().root);
    Ok(())
}
