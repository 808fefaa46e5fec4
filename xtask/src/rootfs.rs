//! `cargo xtask rootfs <DIR>`: build the test rootfs.

use anyhow::Result;
use berth_fixtures::rootfs::{self, Flavor};
use std::path::Path;

/// Builds the rootfs in `dir` with the flavor berth-fixtures picks here.
pub fn run(dir: &Path) -> Result<()> {
    let flavor = Flavor::detect();
    rootfs::build_as(dir, flavor)?;
    println!("built a {} rootfs in {}", flavor.name(), dir.display());
    Ok(())
}
