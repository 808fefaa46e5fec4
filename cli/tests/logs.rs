//! Captured output of detached containers: `run -d --log-path`, `berth
//! logs`, `Container::logs`, rotation, and the CRI format of every line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth::{CreateOptions, ExitStatus, LogConfig, LogLine, LogOptions, LogStream};
use futures::StreamExt;

mod support;

use support::{bundle, bundle_dir, captured, shim_pid, spec, with_mnt, Env, BERTH};

/// One record of the CRI log format, parsed strictly:
/// `YYYY-MM-DDTHH:MM:SS.fffffffff(Z|±HH:MM) (stdout|stderr) (F|P) content`.
#[derive(Debug)]
struct Record {
    stream: String,
    partial: bool,
    content: Vec<u8>,
}

fn strict_record(line: &[u8]) -> Record {
    let text = String::from_utf8_lossy(line);
    let fail = |why: &str| -> ! { panic!("not a CRI log record ({why}): {text:?}") };
    let mut parts = line.splitn(4, |&c| c == b' ');
    let time = std::str::from_utf8(parts.next().unwrap()).unwrap_or_else(|_| fail("time"));
    let b = time.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 21
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.';
    if !shape {
        fail("time");
    }
    let frac_end = 20 + b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
    if !(21..=29).contains(&frac_end) {
        fail("fraction");
    }
    let zone = &time[frac_end..];
    let zone_ok = zone == "Z"
        || (zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && zone.as_bytes()[3] == b':');
    if !zone_ok {
        fail("zone");
    }
    let stream = match parts.next() {
        Some(b"stdout") => "stdout",
        Some(b"stderr") => "stderr",
        _ => fail("stream"),
    };
    let partial = match parts.next() {
        Some(b"F") => false,
        Some(b"P") => true,
        _ => fail("tag"),
    };
    let content = parts.next().unwrap_or_else(|| fail("content")).to_vec();
    Record {
        stream: stream.into(),
        partial,
        content,
    }
}

/// Every record of the files `path.N`..`path.1`, `path` (oldest first),
/// parsed strictly, joined into lines per stream. Also returns how many
/// records were partial.
fn strict_lines(path: &Path, max_files: u32) -> (HashMap<String, Vec<Vec<u8>>>, usize) {
    let mut lines: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    let mut open: HashMap<String, Vec<u8>> = HashMap::new();
    let mut partials = 0;
    for n in (0..max_files).rev() {
        let p = if n == 0 {
            path.to_path_buf()
        } else {
            PathBuf::from(format!("{}.{n}", path.display()))
        };
        let Ok(data) = std::fs::read(&p) else {
            continue;
        };
        assert!(data.ends_with(b"\n"), "{} ends mid-record", p.display());
        for line in data[..data.len() - 1].split(|&c| c == b'\n') {
            let r = strict_record(line);
            let buf = open.entry(r.stream.clone()).or_default();
            buf.extend_from_slice(&r.content);
            if r.partial {
                partials += 1;
            } else {
                let l = std::mem::take(buf);
                lines.entry(r.stream).or_default().push(l);
            }
        }
    }
    for (stream, rest) in open {
        assert!(rest.is_empty(), "{stream}: unfinished line {rest:?}");
    }
    (lines, partials)
}

fn numbered(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix} {i}").into_bytes())
        .collect()
}

/// A container printing 100,000 lines on stdout and on stderr, started
/// with `berth run -d --log-path` (a process that is gone when anyone
/// reads): `berth logs` and `Container::logs` in this process show every
/// line once, in order, on the right stream; the log file is strict CRI.
/// It finished writing before anyone read anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_d_captures_every_line_of_both_streams() {
    let env = Env::new("lines");
    let id = format!("lines-{}", std::process::id());
    // sed writes in blocks, so lines are cut between reads: P records.
    let script = "seq 0 99999 | sed 's/^/out /' & seq 0 99999 | sed 's/^/err /' >&2; wait";
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("lines.log");
    let (out, _bundle) = env.run_detached_with_log(&id, script, &log);
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");

    let rt = env.runtime().await;
    let ctr = rt.get(&id).await.unwrap();
    // Nobody has read the log: the container still ran to its end.
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(0));

    let (want_out, want_err) = (numbered("out", 100_000), numbered("err", 100_000));
    let (lines, partials) = strict_lines(&log, 5);
    assert_eq!(lines["stdout"], want_out);
    assert_eq!(lines["stderr"], want_err);
    eprintln!(
        "log: {} bytes, {partials} partial records",
        std::fs::metadata(&log).unwrap().len()
    );

    let cli = env.berth(&["logs", &id]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let split = |b: &[u8]| -> Vec<Vec<u8>> {
        if b.is_empty() {
            return Vec::new();
        }
        b.strip_suffix(b"\n")
            .unwrap_or(b)
            .split(|&c| c == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    };
    assert_eq!(split(&cli.stdout), want_out);
    assert_eq!(split(&cli.stderr), want_err);

    let all: Vec<LogLine> = ctr
        .logs(LogOptions::default())
        .await
        .unwrap()
        .map(|l| l.unwrap())
        .collect()
        .await;
    assert_eq!(all.len(), 200_000);
    let of = |s: LogStream| -> Vec<Vec<u8>> {
        all.iter()
            .filter(|l| l.stream == s)
            .map(|l| l.line.clone())
            .collect()
    };
    assert_eq!(of(LogStream::Stdout), want_out);
    assert_eq!(of(LogStream::Stderr), want_err);
    // Times rise within a stream (a line's time is its first part's, so
    // across streams a line completed later may be older).
    for s in [LogStream::Stdout, LogStream::Stderr] {
        let times: Vec<_> = all
            .iter()
            .filter(|l| l.stream == s)
            .map(|l| l.time)
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    // --tail and --since.
    let tail = env.berth(&["logs", "--tail", "3", &id]);
    let (o, e) = (split(&tail.stdout), split(&tail.stderr));
    let last3: Vec<&LogLine> = all.iter().rev().take(3).collect();
    assert_eq!(o.len() + e.len(), 3, "{tail:?}");
    for l in last3 {
        let here = if l.stream == LogStream::Stdout {
            &o
        } else {
            &e
        };
        assert!(here.contains(&l.line));
    }
    let future = env.berth(&["logs", "--since", "2999-01-01T00:00:00Z", &id]);
    assert!(future.status.success());
    assert!(future.stdout.is_empty() && future.stderr.is_empty());

    ctr.delete().await.unwrap();
    std::fs::remove_file(&log).unwrap();
    env.finish().await;
}

/// `logs -f` (the SDK's and the CLI's) shows lines as they come and ends
/// once the container exits; a line longer than a record comes back
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_sees_new_lines_and_ends_with_the_container() {
    let env = Env::new("follow");
    let rt = env.runtime().await;
    let shared = tempfile::tempdir().unwrap();
    let go = shared.path().join("go");
    let id = format!("follow-{}", std::process::id());
    let script = "echo first; while [ ! -e /mnt/go ]; do sleep 0.05; done; \
                  echo second >&2; head -c 40000 /dev/zero | tr '\\0' x; echo; \
                  printf 'part'; sleep 0.2; echo ial; exit 4";
    let ctr = rt
        .create_with(
            &id,
            bundle(with_mnt(spec(script), shared.path())),
            captured(LogConfig::default()),
        )
        .await
        .unwrap();
    // A second handle, as another process would have.
    let other = rt.get(&id).await.unwrap();
    let mut follow = other
        .logs(LogOptions::default().follow(true))
        .await
        .unwrap();
    let cli = Command::new(BERTH)
        .arg("--root")
        .arg(env.root())
        .args(["logs", "-f", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    ctr.start().await.unwrap();
    let first = follow.next().await.unwrap().unwrap();
    assert_eq!(
        (first.stream, first.line.as_slice()),
        (LogStream::Stdout, &b"first"[..])
    );
    // Written only now, after the stream reached the end of the file.
    std::fs::write(&go, b"").unwrap();
    let rest: Vec<LogLine> = tokio::time::timeout(
        Duration::from_secs(120),
        follow.map(|l| l.unwrap()).collect(),
    )
    .await
    .expect("logs -f did not end with the container");
    // In order within each stream (the two are read independently).
    let of = |s: LogStream| -> Vec<Vec<u8>> {
        rest.iter()
            .filter(|l| l.stream == s)
            .map(|l| l.line.clone())
            .collect()
    };
    assert_eq!(of(LogStream::Stderr), [b"second".to_vec()]);
    assert_eq!(
        of(LogStream::Stdout),
        [vec![b'x'; 40_000], b"partial".to_vec()]
    );
    assert_eq!(rest.len(), 3);
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(4));
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = b"first\n".to_vec();
    want.extend(vec![b'x'; 40_000]);
    want.extend_from_slice(b"\npartial\n");
    assert_eq!(out.stdout, want);
    assert_eq!(out.stderr, b"second\n");

    // The 40,000-byte line went into several records, joined back.
    let log = ctr.state_dir().join(berth::logs::DEFAULT_LOG_FILE);
    let (lines, partials) = strict_lines(&log, 5);
    assert!(partials >= 2, "{partials} partial records");
    assert_eq!(lines["stdout"].len(), 3);
    ctr.delete().await.unwrap();
    env.finish().await;
}

/// A container writing 200 MB with nobody reading: every log file stays
/// under its cap the whole time, only `max_files` of them are kept, and
/// the newest lines are the container's last ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_the_log_under_its_cap() {
    let env = Env::new("rotate");
    let rt = env.runtime().await;
    let id = format!("rotate-{}", std::process::id());
    const CAP: u64 = 4 << 20;
    const TOTAL: u64 = 200 << 20;
    // 200 MiB of 56-byte lines.
    let script = format!(
        "yes 0123456789012345678901234567890123456789012345678901234 | head -c {TOTAL}; echo; echo end"
    );
    let ctr = rt
        .create_with(
            &id,
            bundle(spec(&script)),
            captured(LogConfig::default().max_size(CAP).max_files(3)),
        )
        .await
        .unwrap();
    let log = ctr.state_dir().join(berth::logs::DEFAULT_LOG_FILE);
    let started = Instant::now();
    ctr.start().await.unwrap();
    // Sizes seen while it writes (sampled, never read).
    let watch = {
        let log = log.clone();
        let ctr = ctr.clone();
        tokio::spawn(async move {
            let mut max = 0u64;
            let mut files = 0usize;
            let mut exit = std::pin::pin!(ctr.wait());
            loop {
                for n in 0..5 {
                    let p = if n == 0 {
                        log.clone()
                    } else {
                        PathBuf::from(format!("{}.{n}", log.display()))
                    };
                    if let Ok(m) = std::fs::metadata(&p) {
                        max = max.max(m.len());
                        files = files.max(n + 1);
                    }
                }
                tokio::select! {
                    s = &mut exit => return (max, files, s.unwrap()),
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        })
    };
    let (max, files, status) = watch.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status, ExitStatus::Exited(0));
    assert!(max <= CAP, "a log file reached {max} bytes (cap {CAP})");
    assert!(files <= 3, "{files} files");
    let mut on_disk = 0;
    for n in 0..3 {
        let p = PathBuf::from(if n == 0 {
            log.display().to_string()
        } else {
            format!("{}.{n}", log.display())
        });
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= CAP, "{}: {len}", p.display());
        on_disk += len;
    }
    assert!(!PathBuf::from(format!("{}.3", log.display())).exists());
    let (lines, _) = strict_lines(&log, 3);
    let out = &lines["stdout"];
    assert_eq!(out.last().unwrap(), b"end");
    // (The oldest file may begin with the end of a line it lost.)
    assert!(out[1..out.len() - 2]
        .iter()
        .all(|l| l == b"0123456789012345678901234567890123456789012345678901234"));
    eprintln!(
        "200 MiB written with nobody reading in {elapsed:?} ({:.0} MiB/s); \
         {on_disk} bytes kept on disk in 3 files, largest seen {max}",
        200.0 / elapsed.as_secs_f64()
    );
    ctr.delete().await.unwrap();
    env.finish().await;
}

/// The shim that captures a detached container's output runs on two
/// threads for the container's whole life: its own, and the one draining
/// the pipes. No blocking-pool thread is left from creating the container.
#[tokio::test]
async fn a_capturing_shim_runs_on_two_threads() {
    let env = Env::new("threads");
    let id = format!("threads-{}", std::process::id());
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("threads.log");
    let _bundle = env.run_detached_with_log(&id, "sleep 100", &log);
    let rt = env.runtime().await;
    let ctr = rt.get(&id).await.unwrap();
    let shim = shim_pid(&ctr);
    let mut threads: Vec<String> = std::fs::read_dir(format!("/proc/{shim}/task"))
        .unwrap()
        .map(|t| {
            let comm = t.unwrap().path().join("comm");
            std::fs::read_to_string(comm).unwrap().trim().to_string()
        })
        .collect();
    threads.sort();
    ctr.force_delete().await.unwrap();
    assert_eq!(threads, ["berth", "berth-logs"], "the shim's threads");
    env.finish().await;
}

/// Bad settings are refused before anything is made, naming the setting;
/// a container without captured output says so.
#[tokio::test]
async fn bad_log_settings_are_typed_errors() {
    let env = Env::new("bad");
    let rt = env.runtime().await;
    let mut not_detached = CreateOptions::default();
    not_detached.log = Some(LogConfig::default());
    let e = rt
        .create_with("bad", bundle(spec("true")), not_detached)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, berth::Error::InvalidOption { option, .. } if option == "log"),
        "{e}"
    );
    let e = rt
        .create_with(
            "bad",
            bundle(spec("true")),
            captured(LogConfig::default().max_size(10)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, berth::Error::InvalidOption { option, .. } if option == "log.max_size"),
        "{e}"
    );
    let e = rt
        .create_with(
            "bad",
            bundle(spec("true")),
            captured(LogConfig::default().path("rel.log")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, berth::Error::InvalidOption { option, .. } if option == "log.path"),
        "{e}"
    );
    // A file the shim cannot open: its error, and nothing left behind.
    let e = rt
        .create_with(
            "bad",
            bundle(spec("true")),
            captured(LogConfig::default().path("/nonexistent-berth-dir/x.log")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, berth::Error::Shim(m) if m.contains("/nonexistent-berth-dir/x.log")),
        "{e}"
    );
    assert!(rt.list().await.unwrap().is_empty());
    let mut tty = spec("true");
    tty.process_mut().as_mut().unwrap().set_terminal(Some(true));
    let e = rt
        .create_with("bad", bundle(tty), captured(LogConfig::default()))
        .await
        .unwrap_err();
    assert!(matches!(&e, berth::Error::InvalidOption { .. }), "{e}");

    // No capture: logs() is refused, the CLI says why.
    let id = format!("nolog-{}", std::process::id());
    let ctr = rt
        .create_with(&id, bundle(spec("true")), {
            let mut create_options = CreateOptions::default();
            create_options.stdin = berth::Stdio::Null;
            create_options.stdout = berth::Stdio::Null;
            create_options.stderr = berth::Stdio::Null;
            create_options.detached = true;
            create_options
        })
        .await
        .unwrap();
    let e = ctr.logs(LogOptions::default()).await.err().unwrap();
    assert!(matches!(e, berth::Error::Unsupported(_)), "{e}");
    let out = env.berth(&["logs", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no captured output"));
    ctr.force_delete().await.unwrap();

    // The CLI: --log-path only where a shim can capture.
    let b = bundle_dir(&spec("true"));
    let out = env.berth(&[
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        "--log-path",
        "/tmp/x.log",
        "never",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--detach"));
    let out = env.berth(&[
        "run",
        "-d",
        "--bundle",
        b.path().to_str().unwrap(),
        "--log-path",
        "/tmp/x.log",
        "--log-max-size",
        "lots",
        "never",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-max-size"));
    env.finish().await;
}

/// `create --log-path` then `start` (separate processes) captures too; and
/// `run -d` with no --log-path captures into the state directory when its
/// stdout and stderr are a terminal, keeping nothing of that terminal open
/// in the shim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_a_log_path_and_run_d_on_a_terminal_capture() {
    let env = Env::new("modes");
    let rt = env.runtime().await;
    let b = bundle_dir(&spec("echo to-out; echo to-err >&2"));
    let bundle = b.path().to_str().unwrap();

    let id = format!("created-{}", std::process::id());
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("c.log");
    let out = env.berth(&[
        "create",
        "--bundle",
        bundle,
        "--log-path",
        log.to_str().unwrap(),
        &id,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.berth(&["start", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctr = rt.get(&id).await.unwrap();
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(0));
    let out = env.berth(&["logs", &id]);
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"to-out\n"[..], &b"to-err\n"[..])
    );
    let (lines, _) = strict_lines(&log, 5);
    assert_eq!(lines["stdout"], [b"to-out".to_vec()]);
    ctr.delete().await.unwrap();

    let id = format!("tty-{}", std::process::id());
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let status = Command::new(BERTH)
        .arg("--root")
        .arg(env.root())
        .args(["run", "-d", "--bundle", bundle, &id])
        .stdin(std::process::Stdio::null())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .status()
        .unwrap();
    assert!(status.success());
    let ctr = rt.get(&id).await.unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctr.state_dir().join("state.json")).unwrap())
            .unwrap();
    if let Some(shim) = state["shim"]["pid"].as_i64() {
        for fd in 0..3 {
            // Gone already is fine: then it held nothing either.
            if let Ok(target) = std::fs::read_link(format!("/proc/{shim}/fd/{fd}")) {
                assert_eq!(target, Path::new("/dev/null"), "shim fd {fd}");
            }
        }
    }
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(0));
    assert!(ctr.state_dir().join(berth::logs::DEFAULT_LOG_FILE).exists());
    let out = env.berth(&["logs", &id]);
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"to-out\n"[..], &b"to-err\n"[..])
    );
    drop(pty.master);
    ctr.delete().await.unwrap();
    env.finish().await;
}

/// A follower that reads while the log rotates dozens of times sees every
/// line once, in order (no file is dropped: the cap times the number of
/// files exceeds what is written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_reads_through_rotations() {
    let env = Env::new("follow-rotate");
    let rt = env.runtime().await;
    let id = format!("frot-{}", std::process::id());
    let ctr = rt
        .create_with(
            &id,
            bundle(spec("seq 1 200000")),
            captured(LogConfig::default().max_size(256 << 10).max_files(64)),
        )
        .await
        .unwrap();
    let follow = rt
        .get(&id)
        .await
        .unwrap()
        .logs(LogOptions::default().follow(true))
        .await
        .unwrap();
    ctr.start().await.unwrap();
    let lines: Vec<LogLine> = tokio::time::timeout(
        Duration::from_secs(300),
        follow.map(|l| l.unwrap()).collect(),
    )
    .await
    .expect("logs -f did not end with the container");
    let got: Vec<Vec<u8>> = lines.into_iter().map(|l| l.line).collect();
    let want: Vec<Vec<u8>> = (1..=200_000)
        .map(|i: u32| i.to_string().into_bytes())
        .collect();
    assert!(
        got == want,
        "{} lines, first difference at {:?}",
        got.len(),
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
    let log = ctr.state_dir().join(berth::logs::DEFAULT_LOG_FILE);
    let rotations = (1..64)
        .filter(|n| PathBuf::from(format!("{}.{n}", log.display())).exists())
        .count();
    assert!(rotations >= 20, "only {rotations} rotated files");
    ctr.delete().await.unwrap();
    env.finish().await;
}
