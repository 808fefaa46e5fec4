//! Booting one guest with `qemu-system-x86_64` under TCG.
//!
//! The guest gets two serial ports, both files on the host: `ttyS0` is the
//! kernel's console (boot messages, the init's own complaints), `ttyS1` the
//! results port the init writes markers and test events to (see
//! [`crate::results`]). There is no network device, no disk and no display.
//! `-no-reboot` with `panic=-1` turns a guest panic into a QEMU exit; a guest
//! that hangs is killed at the timeout.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// How to boot one guest.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The kernel: an uncompressed `vmlinux` (faster under TCG) or a bzImage.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// Extra kernel command-line parameters (after the console settings).
    pub append: String,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// Where the console (`ttyS0`) goes.
    pub console_log: PathBuf,
    /// Where the results port (`ttyS1`) goes.
    pub results_log: PathBuf,
    /// Kill the guest after this long.
    pub timeout: Duration,
}

/// How a boot ended.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// QEMU's exit status (`None` if it was killed at the timeout).
    pub status: Option<ExitStatus>,
    /// Whether the timeout was reached.
    pub timed_out: bool,
    /// Wall time from spawning QEMU to its exit.
    pub elapsed: Duration,
}

impl Boot {
    /// The QEMU command line.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(QEMU);
        // One host thread for all vCPUs: with multi-threaded TCG the guest
        // kernel's live code patching (jump labels, text_poke_bp) races
        // with the other vCPU's translated code, seen as "Oops: int3" in
        // __alloc_pages on 6.12 and soft lockups on 5.10.
        cmd.args(["-accel", "tcg,thread=single", "-nodefaults", "-no-reboot"])
            .args(["-display", "none", "-monitor", "none"])
            .args(["-m", &self.memory_mib.to_string()])
            .args(["-smp", &self.cpus.to_string()])
            .args(["-device", "virtio-rng-pci"])
            .arg("-serial")
            .arg(format!("file:{}", self.console_log.display()))
            .arg("-serial")
            .arg(format!("file:{}", self.results_log.display()))
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            .arg("-append")
            .arg(format!("console=ttyS0 panic=-1 quiet {}", self.append))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// Boots the guest and waits for QEMU to exit or the timeout.
    pub fn run(&self) -> Result<BootOutcome> {
        let mut cmd = self.command();
        let shown = format!("{cmd:?}");
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| Error::Command {
            command: shown.clone(),
            status: format!("spawn: {e}"),
            stderr: String::new(),
        })?;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| Error::Command {
                command: shown.clone(),
                status: format!("wait: {e}"),
                stderr: String::new(),
            })? {
                if !status.success() {
                    let out = child.wait_with_output().ok();
                    let stderr = out
                        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                        .unwrap_or_default();
                    if !stderr.trim().is_empty() {
                        return Err(Error::Command {
                            command: shown,
                            status: status.to_string(),
                            stderr,
                        });
                    }
                }
                return Ok(BootOutcome {
                    status: Some(status),
                    timed_out: false,
                    elapsed: started.elapsed(),
                });
            }
            if started.elapsed() >= self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(BootOutcome {
                    status: None,
                    timed_out: true,
                    elapsed: started.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
