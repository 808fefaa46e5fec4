//! `logs` and `stop`.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth::{LogOptions, LogStream};
use futures::StreamExt;

use super::{runtime, Outcome};
use crate::cli::{Global, Logs, Stop};

/// `--since`: RFC 3339, seconds since the epoch, or a duration ago.
fn parse_since(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Some(t) = berth::logs::parse_time(s) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    let ago = super::state::parse_interval(s).map_err(|_| {
        format!("--since {s:?}: not an RFC 3339 time, seconds since the epoch, or a duration (10m)")
    })?;
    Ok(now.checked_sub(ago).unwrap_or(UNIX_EPOCH))
}

pub async fn logs(g: &Global, l: Logs) -> Outcome {
    let ctr = runtime(g).await?.get(&l.id).await?;
    let mut opts = LogOptions::default().follow(l.follow);
    if let Some(n) = l.tail {
        opts = opts.tail(n);
    }
    if let Some(s) = &l.since {
        opts = opts.since(parse_since(s, SystemTime::now())?);
    }
    let mut lines = ctr.logs(opts).await?;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
    while let Some(line) = lines.next().await {
        let line = line?;
        let to: &mut dyn Write = match line.stream {
            LogStream::Stdout => &mut out,
            LogStream::Stderr => &mut err,
        };
        if l.timestamps {
            write!(to, "{} ", berth::logs::format_time(line.time))?;
        }
        to.write_all(&line.line)?;
        to.write_all(b"\n")?;
        if l.follow {
            to.flush()?;
        }
    }
    out.flush()?;
    err.flush()?;
    Ok(0)
}

pub async fn stop(g: &Global, s: Stop) -> Outcome {
    let ctr = runtime(g).await?.get(&s.id).await?;
    match ctr.stop(Duration::from_secs(s.time)).await {
        Ok(_) => Ok(0),
        // Stopped, but its exit status died with its creator (a container
        // left to a caller that did not record it).
        Err(berth::Error::ExitStatusUnknown { .. })
            if ctr.status().await? == berth::Status::Stopped =>
        {
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            parse_since("1970-01-01T00:00:10Z", now),
            Ok(UNIX_EPOCH + Duration::from_secs(10))
        );
        assert_eq!(
            parse_since("20", now),
            Ok(UNIX_EPOCH + Duration::from_secs(20))
        );
        assert_eq!(
            parse_since("10m", now),
            Ok(UNIX_EPOCH + Duration::from_secs(400))
        );
        assert!(parse_since("yesterday", now).is_err());
    }
}
