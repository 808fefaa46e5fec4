//! [`Signal`]: a signal number that kill(2) would take, by name or number,
//! real-time signals included.

use std::fmt;
use std::str::FromStr;

/// A signal to send to a container's processes.
///
/// Any signal the kernel has, real-time ones included (which nix's enum
/// cannot name): from a constant, a number, or a name as runc and Docker
/// take it (`KILL`, `SIGKILL`, `9`, `RTMIN+3`).
///
/// ```
/// use berth::Signal;
/// assert_eq!("SIGTERM".parse::<Signal>().unwrap(), Signal::TERM);
/// assert_eq!("kill".parse::<Signal>().unwrap(), Signal::KILL);
/// assert_eq!("9".parse::<Signal>().unwrap().number(), 9);
/// assert_eq!(Signal::new(34).unwrap().to_string(), "SIGRTMIN");
/// assert!("NOPE".parse::<Signal>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

/// The standard signals by name (without `SIG`), as Linux numbers them.
const NAMES: [(&str, i32); 31] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The kernel's real-time range (glibc reserves the first two or three
/// for itself and moves `SIGRTMIN` up; a container's process is not
/// necessarily glibc's, so the kernel's numbers are used).
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

impl Signal {
    /// `SIGHUP`.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// `SIGINT`.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// `SIGQUIT`.
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// `SIGKILL`: cannot be caught, blocked or ignored.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// `SIGUSR1`.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGUSR2`.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// `SIGTERM`: the polite request to stop.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGCONT`.
    pub const CONT: Signal = Signal(libc::SIGCONT);
    /// `SIGSTOP`: cannot be caught, blocked or ignored.
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    /// `SIGWINCH`.
    pub const WINCH: Signal = Signal(libc::SIGWINCH);

    /// Signal `number` (1 to 64), or `None` for a number no signal has.
    pub fn new(number: i32) -> Option<Signal> {
        (1..=RTMAX).contains(&number).then_some(Signal(number))
    }

    /// Its number, as kill(2) takes it.
    pub fn number(self) -> i32 {
        self.0
    }
}

impl TryFrom<i32> for Signal {
    type Error = crate::Error;

    fn try_from(number: i32) -> crate::Result<Signal> {
        Signal::new(number).ok_or_else(|| crate::Error::InvalidOption {
            option: "signal".into(),
            reason: format!("{number} is not a signal number (1 to {RTMAX})"),
        })
    }
}

impl FromStr for Signal {
    type Err = crate::Error;

    /// `KILL`, `SIGKILL`, `kill`, `9`, `RTMIN`, `RTMIN+3`, `SIGRTMAX-1`.
    fn from_str(s: &str) -> crate::Result<Signal> {
        let bad = || crate::Error::InvalidOption {
            option: "signal".into(),
            reason: format!("{s:?} names no signal"),
        };
        if let Ok(n) = s.parse::<i32>() {
            return Signal::new(n).ok_or_else(bad);
        }
        let upper = s.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
            return Ok(Signal(*n));
        }
        let offset = |rest: &str| -> Option<i32> {
            match rest {
                "" => Some(0),
                _ => rest.parse::<i32>().ok(),
            }
        };
        let n = if let Some(rest) = name.strip_prefix("RTMIN") {
            offset(rest.strip_prefix('+').unwrap_or(rest)).map(|o| RTMIN + o)
        } else if let Some(rest) = name.strip_prefix("RTMAX") {
            offset(rest.strip_prefix('-').unwrap_or(rest)).map(|o| RTMAX - o)
        } else {
            None
        };
        n.filter(|n| (RTMIN..=RTMAX).contains(n))
            .map(Signal)
            .ok_or_else(bad)
    }
}

impl fmt::Display for Signal {
    /// `SIGKILL`; `SIGRTMIN+3` for a real-time signal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match NAMES.iter().find(|(_, n)| *n == self.0) {
            Some((name, _)) => write!(f, "SIG{name}"),
            None if self.0 == RTMIN => f.write_str("SIGRTMIN"),
            None if self.0 > RTMIN => write!(f, "SIGRTMIN+{}", self.0 - RTMIN),
            None => write!(f, "signal {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Signal;

    #[test]
    fn names_and_numbers_round_trip() {
        for n in 1..=64 {
            let Some(sig) = Signal::new(n) else {
                continue;
            };
            let name = sig.to_string();
            if name.starts_with("signal ") {
                // 32 and 33: glibc's, no name.
                assert!(n == 32 || n == 33, "{n}");
                continue;
            }
            assert_eq!(name.parse::<Signal>().unwrap(), sig, "{name}");
        }
        assert_eq!("RTMAX-1".parse::<Signal>().unwrap().number(), 63);
        assert_eq!("sigrtmin+3".parse::<Signal>().unwrap().number(), 37);
    }

    #[test]
    fn what_is_no_signal_is_refused() {
        for bad in [
            "", "0", "65", "-1", "SIG", "KILLX", "RTMIN+31", "RTMAX-31", "RTMIN+x",
        ] {
            assert!(bad.parse::<Signal>().is_err(), "{bad:?}");
        }
        assert!(Signal::new(0).is_none());
        assert!(Signal::try_from(65).is_err());
    }
}
