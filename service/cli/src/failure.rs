//! Why the CLI stopped, and the documented exit code that says so.

use tundra_client::ApiError;

/// Why the CLI stopped, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

/// The documented exit codes (`tundra --help`, docs/guides/cli.md).
pub mod exit {
    pub const OK: u8 = 0;
    /// tundrad refused the request (bad input, conflict, server error).
    pub const REFUSED: u8 = 1;
    /// A bad flag, noun, file or setting: nothing was sent.
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    /// No token, or the token may not do this.
    pub const DENIED: u8 = 4;
    /// `--wait`: the work ran and failed (an operation failed, a node went to error).
    pub const WORK_FAILED: u8 = 5;
    /// `--wait`: the time ran out; the work goes on in tundrad.
    pub const TIMEOUT: u8 = 6;
    /// tundrad was not reached.
    pub const UNREACHABLE: u8 = 7;
}

impl Failure {
    pub fn usage(m: impl Into<String>) -> Failure {
        Failure { code: exit::USAGE, message: m.into() }
    }
    pub fn not_found(m: impl Into<String>) -> Failure {
        Failure { code: exit::NOT_FOUND, message: m.into() }
    }
    pub fn work(m: impl Into<String>) -> Failure {
        Failure { code: exit::WORK_FAILED, message: m.into() }
    }
    pub fn timeout(m: impl Into<String>) -> Failure {
        Failure { code: exit::TIMEOUT, message: m.into() }
    }
    pub fn other(m: impl Into<String>) -> Failure {
        Failure { code: exit::REFUSED, message: m.into() }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        let code = match e.status.map(|s| s.as_u16()) {
            None => exit::UNREACHABLE,
            Some(404) => exit::NOT_FOUND,
            Some(401 | 403) => exit::DENIED,
            Some(_) => exit::REFUSED,
        };
        let mut message = e.detail();
        if let Some(p) = e.pointer() {
            message.push_str(&format!(" (at {p})"));
        }
        if code == exit::DENIED && e.status.map(|s| s.as_u16()) == Some(401) {
            message.push_str("; set TUNDRA_TOKEN or a profile's token_file");
        }
        Failure { code, message }
    }
}
