//! The cost of watching many containers: N (default 100) running
//! containers sampled every 100 ms for SECONDS (default 10), and the CPU
//! time this process spent meanwhile, as a share of one core. Measured
//! three ways, one after the other: a `Container::stats` stream per
//! container, then one `StatsSampler` for all of them (one shared ticker),
//! then the same with `StatsDetail::Usage` (the counters without limits,
//! throttling, peaks, block I/O and huge pages).
//!
//! On v1 and hybrid hosts a fourth line is the floor under the third: the
//! same cgroup files a usage sample reads, `pread` by a bare loop on one
//! thread (no parsing, no runtime, nothing kept). The last line is a tokio
//! interval of the same period alone in this runtime: what waking the
//! runtime every tick costs, before anything is read. What the third line
//! costs above the floor and the interval is berth's; the floor itself is
//! the kernel's.
//!
//! A sampler's containers are added (their files opened) before its clock
//! starts, as the bare loop's files are; the line says what adding took.
//! Each line splits the CPU time into user and system, as `getrusage`
//! reports them (tick-sampled, so only roughly).
//!
//! With ROUNDS above 1, the ways take turns that many times and a last
//! block prints each way's median share of a core, with its range.
//!
//! `cargo run --release -p berth-benches --example stats_load [N] [SECONDS] [ROUNDS]`

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use berth::{Container, StatsDetail, StatsSampler};
use berth_benches::{cleanup, create, runtime, spec};
use futures::StreamExt;

/// This process's CPU time so far: (user, system).
fn cpu_time() -> (Duration, Duration) {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    (tv(usage.user_time()), tv(usage.system_time()))
}

const INTERVAL: Duration = Duration::from_millis(100);

/// How the containers are sampled.
enum Way<'a> {
    /// A `Container::stats` stream each.
    Streams,
    /// One `StatsSampler` reading this much of each sample, its
    /// containers added before the clock starts (as the bare loop's files
    /// are opened before it starts).
    Sampler(StatsDetail),
    /// These files, by [`bare_reads`].
    Bare(&'a [Vec<File>]),
    /// Nothing read: a tokio interval of the same period alone, the
    /// runtime's share of every tick.
    Interval,
}

/// A stream per container; the number of samples taken.
async fn streams(ctrs: &[Container], until: Instant) -> u64 {
    let mut tasks = tokio::task::JoinSet::new();
    for c in ctrs {
        let mut stream = c.stats(INTERVAL);
        tasks.spawn(async move {
            let mut samples = 0u64;
            while let Some(s) = stream.next().await {
                s.expect("stats sample");
                samples += 1;
                if Instant::now() >= until {
                    break;
                }
            }
            samples
        });
    }
    let mut samples = 0;
    while let Some(r) = tasks.join_next().await {
        samples += r.expect("stats task");
    }
    samples
}

/// A sampler of `detail` with every container of `ctrs` added (its files
/// opened), and the CPU time adding them took.
fn filled_sampler(ctrs: &[Container], detail: StatsDetail) -> (StatsSampler, Duration) {
    let cpu0 = cpu_time();
    let mut sampler = StatsSampler::with_detail(INTERVAL, detail);
    for c in ctrs {
        sampler.add(c).expect("add to the sampler");
    }
    let cpu1 = cpu_time();
    (sampler, (cpu1.0 + cpu1.1) - (cpu0.0 + cpu0.1))
}

/// Runs `sampler` until `until`; the number of samples taken.
async fn sampler(mut sampler: StatsSampler, until: Instant) -> u64 {
    let mut samples = 0u64;
    while let Some(tick) = sampler.next().await {
        for (_, s) in &tick.samples {
            s.as_ref().expect("stats sample");
        }
        samples += tick.samples.len() as u64;
        if Instant::now() >= until {
            break;
        }
    }
    samples
}

/// Ticks a tokio interval until `until`; no samples.
async fn interval_alone(until: Instant) -> u64 {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < until {
        ticks.tick().await;
    }
    0
}

/// The files a `StatsDetail::Usage` sample reads on a v1 or hybrid host,
/// for each container: CPU time (on a hybrid host the cgroup2 `cpu.stat`,
/// else per CPU and per mode from `cpuacct`), memory usage (and
/// memory+swap while swap is in use), `memory.stat`, the process count.
/// Found from each container's `/proc/PID/cgroup` and the host's cgroup
/// mounts; `None` on a v2 host, where a sample is read another way.
fn usage_files(ctrs: &[Container]) -> Option<Vec<Vec<File>>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let cgroup2_mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split(' ').nth(4).map(str::to_string))?
    });
    // (mount point, super options) of each v1 hierarchy.
    let v1: Vec<(String, String)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut right = right.split(' ');
            (right.next()? == "cgroup").then_some(())?;
            let options = right.nth(1)?.to_string();
            Some((left.split(' ').nth(4)?.to_string(), options))
        })
        .collect();
    let dir_of = |pid: i32, controller: &str| -> Option<String> {
        let (mount, _) = v1
            .iter()
            .find(|(_, o)| o.split(',').any(|x| x == controller))?;
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = cgroups.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, names, path) = (f.next()?, f.next()?, f.next()?);
            names.split(',').any(|x| x == controller).then_some(path)
        })?;
        Some(format!("{mount}{path}"))
    };
    let info = nix::sys::sysinfo::sysinfo().ok()?;
    let swap_in_use = info.swap_total() != info.swap_free();
    if v1.is_empty() {
        return None;
    }
    // The cgroup2 `cpu.stat` of a hybrid host's container, if it opens.
    let cgroup2_cpu_stat = |pid: i32| -> Option<String> {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
        let file = format!("{}{path}/cpu.stat", cgroup2_mount.as_ref()?);
        std::path::Path::new(&file).exists().then_some(file)
    };
    let mut all = Vec::new();
    for c in ctrs {
        let (memory, pids) = (dir_of(c.pid(), "memory")?, dir_of(c.pid(), "pids")?);
        let mut names = match cgroup2_cpu_stat(c.pid()) {
            Some(cpu_stat) => vec![cpu_stat],
            None => {
                let cpuacct = dir_of(c.pid(), "cpuacct")?;
                vec![
                    format!("{cpuacct}/cpuacct.usage_percpu"),
                    format!("{cpuacct}/cpuacct.usage_all"),
                ]
            }
        };
        names.extend([
            format!("{memory}/memory.usage_in_bytes"),
            format!("{memory}/memory.stat"),
            format!("{pids}/pids.current"),
        ]);
        if swap_in_use {
            names.push(format!("{memory}/memory.memsw.usage_in_bytes"));
        }
        all.push(names.iter().filter_map(|n| File::open(n).ok()).collect());
    }
    Some(all)
}

/// Reads every file of `files` every 100 ms until `until`, on this thread;
/// the number of samples (a container's files once) taken.
fn bare_reads(files: &[Vec<File>], until: Instant) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut samples = 0u64;
    let mut next = Instant::now();
    while Instant::now() < until {
        for container in files {
            for f in container {
                let _ = std::hint::black_box(f.read_at(&mut buf, 0));
            }
        }
        samples += files.len() as u64;
        next += INTERVAL;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    samples
}

/// One way's run: what it took and what it cost.
struct Run {
    samples: u64,
    wall: Duration,
    user: Duration,
    system: Duration,
    /// CPU time adding the containers to a sampler took, before the clock.
    setup: Option<Duration>,
}

impl Run {
    fn share_of_core(&self) -> f64 {
        100.0 * (self.user + self.system).as_secs_f64() / self.wall.as_secs_f64()
    }

    fn line(&self, name: &str, n: usize) -> String {
        let cpu = self.user + self.system;
        let (ms, secs) = (INTERVAL.as_millis(), self.wall.as_secs_f64());
        let (what, per_sample) = if self.samples > 0 {
            (
                format!(
                    "{n} containers, a sample each every {ms} ms for {secs:.1} s: {} samples, ",
                    self.samples
                ),
                format!(
                    "{:.1} µs per sample; ",
                    cpu.as_secs_f64() * 1e6 / self.samples as f64
                ),
            )
        } else {
            (
                format!("a tick every {ms} ms for {secs:.1} s: "),
                String::new(),
            )
        };
        let setup = self.setup.map_or(String::new(), |d| {
            format!(" (adding them: {:.1} ms CPU)", d.as_secs_f64() * 1e3)
        });
        format!(
            "{name}: {what}{:.1} ms CPU = {:.2}% of one core ({per_sample}user {:.1} ms, \
             system {:.1} ms){setup}",
            cpu.as_secs_f64() * 1e3,
            self.share_of_core(),
            self.user.as_secs_f64() * 1e3,
            self.system.as_secs_f64() * 1e3,
        )
    }
}

/// Runs `way` for `secs` seconds.
async fn run(way: &Way<'_>, ctrs: &[Container], secs: u64) -> Run {
    let (filled, setup) = match way {
        Way::Sampler(detail) => {
            let (s, cpu) = filled_sampler(ctrs, *detail);
            (Some(s), Some(cpu))
        }
        _ => (None, None),
    };
    let t0 = Instant::now();
    let cpu0 = cpu_time();
    let until = t0 + Duration::from_secs(secs);
    let samples = match way {
        Way::Streams => streams(ctrs, until).await,
        Way::Sampler(_) => sampler(filled.expect("filled above"), until).await,
        Way::Bare(files) => tokio::task::block_in_place(|| bare_reads(files, until)),
        Way::Interval => interval_alone(until).await,
    };
    let wall = t0.elapsed();
    let cpu1 = cpu_time();
    Run {
        samples,
        wall,
        user: cpu1.0 - cpu0.0,
        system: cpu1.1 - cpu0.1,
        setup,
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100, |a| a.parse().expect("N"));
    let secs: u64 = args.next().map_or(10, |a| a.parse().expect("SECONDS"));
    let rounds: usize = args.next().map_or(1, |a| a.parse().expect("ROUNDS"));
    let rt = runtime().await;
    let spec = spec(&["sleep", "1000"]);
    let mut ctrs = Vec::new();
    for _ in 0..n {
        let c = create(&rt, &spec).await;
        c.start().await.expect("start");
        ctrs.push(c);
    }
    let files = usage_files(&ctrs);
    let mut ways = vec![
        ("a stream each", Way::Streams),
        ("one StatsSampler", Way::Sampler(StatsDetail::Full)),
        (
            "one StatsSampler, usage only",
            Way::Sampler(StatsDetail::Usage),
        ),
    ];
    if let Some(files) = &files {
        ways.push(("the same files by a bare pread loop", Way::Bare(files)));
    }
    ways.push(("a tokio interval alone, nothing read", Way::Interval));
    // Printed once the containers are gone: a closed stdout (`| head`)
    // must not leave them running. The ways take turns, round after
    // round, so that a slow minute of the host falls on all of them.
    let mut runs: Vec<Vec<Run>> = ways.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, (_, way)) in ways.iter().enumerate() {
            runs[i].push(run(way, &ctrs, secs).await);
        }
    }
    let names: Vec<&str> = ways.iter().map(|(name, _)| *name).collect();
    drop(ways);
    drop(files);
    for c in ctrs {
        c.force_delete().await.expect("delete");
    }
    cleanup(&rt);
    for (round, _) in runs[0].iter().enumerate() {
        if rounds > 1 {
            println!("round {}:", round + 1);
        }
        for (i, name) in names.iter().enumerate() {
            println!("{}", runs[i][round].line(name, n));
        }
    }
    if rounds > 1 {
        println!("medians of {rounds} rounds (min–max), % of one core:");
        for (i, name) in names.iter().enumerate() {
            let mut shares: Vec<f64> = runs[i].iter().map(Run::share_of_core).collect();
            shares.sort_by(f64::total_cmp);
            println!(
                "{name}: {:.2}% ({:.2}–{:.2})",
                shares[shares.len() / 2],
                shares[0],
                shares[shares.len() - 1]
            );
        }
    }
}
