//! libprocess process addresses: `id@host:port`, e.g. `master@127.0.0.1:5050`.

use std::fmt;
use std::str::FromStr;

/// A libprocess process id. The empty UPID prints as `@0.0.0.0:0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Upid {
    /// Process id, e.g. `master`, `slave(1)`, `scheduler-<uuid>`.
    pub id: String,
    /// IP address or host name.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Why a UPID string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpidError {
    /// No `@` separating id and address.
    #[error("UPID '{0}' has no '@'")]
    MissingAt(String),
    /// Address part is not `host:port`.
    #[error("UPID '{0}' has no valid host:port")]
    BadAddress(String),
    /// Empty process id.
    #[error("UPID '{0}' has an empty process id")]
    EmptyId(String),
}

impl Upid {
    /// Builds a UPID.
    pub fn new(id: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Self {
            id: id.into(),
            host: host.into(),
            port,
        }
    }

    /// `host:port`, for connecting.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.address())
    }
}

impl FromStr for Upid {
    type Err = UpidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, address) = s
            .rsplit_once('@')
            .ok_or_else(|| UpidError::MissingAt(s.into()))?;
        if id.is_empty() {
            return Err(UpidError::EmptyId(s.into()));
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| UpidError::BadAddress(s.into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| UpidError::BadAddress(s.into()))?;
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == '@' || c.is_control())
        {
            return Err(UpidError::BadAddress(s.into()));
        }
        Ok(Self::new(id, host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_libprocess() {
        let upid: Upid = "slave(1)@10.0.0.2:5051".parse().expect("valid");
        assert_eq!(upid.id, "slave(1)");
        assert_eq!(upid.host, "10.0.0.2");
        assert_eq!(upid.port, 5051);
        assert_eq!(upid.to_string(), "slave(1)@10.0.0.2:5051");
    }

    #[test]
    fn malformed_upids_are_rejected() {
        for bad in [
            "master",
            "@1.2.3.4:5",
            "m@1.2.3.4",
            "m@1.2.3.4:x",
            "m@:5",
            "m@a b:5",
            "m@1.2.3.4:70000",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "{bad}");
        }
    }
}
