//! `cargo xtask bundle <DIR> [-- CMD...]`: make an OCI bundle.

use anyhow::Result;
use std::path::Path;

/// Builds `dir/rootfs` and writes `dir/config.json` running `cmd` (or `sh`).
pub fn run(dir: &Path, cmd: &[String]) -> Result<()> {
    let spec = berth_fixtures::bundle::create(dir, cmd)?;
    let args = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    println!("bundle {} runs {:?}", dir.display(), args);
    Ok(())
}
