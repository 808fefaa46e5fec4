//! Unpack throughput of one large layer, beside GNU tar on the same file.
//!
//! `cargo run --release -p berth --example unpack_throughput [MB [small]]` builds
//! a layer of about MB megabytes (default 512) of 64 KiB to 4 MiB files
//! and small files in a deep tree, as a plain tar and a gzip, in a temp
//! dir; then unpacks each with berth (digest checked, O_NOFOLLOW walk)
//! and with `tar -x` (GNU tar, same ownership handling as root), three
//! times each, and prints the best time of each. `UNPACK_DIR` picks the
//! file system (default /var/tmp; the runtime root /run is a tmpfs). A measurement for the
//! issue note, not a test.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_image::{digest, unpack};

fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    // `small`: 4 KiB files three directories deep, as in a distro layer.
    let small = std::env::args().nth(2).as_deref() == Some("small");
    let work = tempfile::Builder::new()
        .prefix("berth-unpack-")
        .tempdir_in(std::env::var("UNPACK_DIR").unwrap_or_else(|_| "/var/tmp".into()))
        .unwrap();
    let tar_path = work.path().join("layer.tar");
    let gz_path = work.path().join("layer.tar.gz");

    let mut b = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(&tar_path).unwrap(),
    ));
    let mut total = 0usize;
    let mut n = 0u64;
    let mut seed = 0x9e3779b97f4a7c15u64;
    while total < mb << 20 {
        let size = if small || n % 4 == 0 {
            4096
        } else {
            64 << 10 << (n % 7)
        };
        let data: Vec<u8> = (0..size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Half-compressible bytes, like binaries.
                (seed as u8) & 0x3f
            })
            .collect();
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(
            &mut h,
            format!("d{}/e{}/g{}/f{n}", n % 16, n % 97, n % 13),
            &data[..],
        )
        .unwrap();
        total += size;
        n += 1;
    }
    b.into_inner().unwrap().flush().unwrap();
    let bytes = std::fs::read(&tar_path).unwrap();
    let diff_id = digest::of(&bytes);
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_path).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&bytes).unwrap();
    gz.finish().unwrap();
    let tar_len = bytes.len();
    drop(bytes);
    println!(
        "layer: {n} files, {:.0} MB tar, {:.0} MB gzip",
        tar_len as f64 / 1e6,
        std::fs::metadata(&gz_path).unwrap().len() as f64 / 1e6
    );

    for (label, blob, flag) in [("tar", &tar_path, "-xf"), ("tar.gz", &gz_path, "-xzf")] {
        let best = |f: &dyn Fn(&Path)| -> Duration {
            (0..3)
                .map(|i| {
                    let dest = work.path().join(format!("out-{label}-{i}"));
                    std::fs::create_dir(&dest).unwrap();
                    Command::new("sync").status().unwrap();
                    let t = Instant::now();
                    f(&dest);
                    let e = t.elapsed();
                    std::fs::remove_dir_all(&dest).unwrap();
                    e
                })
                .min()
                .unwrap()
        };
        let ours = best(&|dest| unpack::unpack(blob, &diff_id, &diff_id, dest).unwrap());
        let gnu = best(&|dest| {
            let s = Command::new("tar")
                .arg(flag)
                .arg(blob)
                .arg("-C")
                .arg(dest)
                .status()
                .unwrap();
            assert!(s.success());
        });
        let rate = |d: Duration| tar_len as f64 / 1e6 / d.as_secs_f64();
        println!(
            "{label:>7}: berth {:>6.0} ms ({:>5.0} MB/s, sha256 included)   GNU tar {:>6.0} ms ({:>5.0} MB/s)",
            ours.as_secs_f64() * 1e3,
            rate(ours),
            gnu.as_secs_f64() * 1e3,
            rate(gnu)
        );
    }
}
