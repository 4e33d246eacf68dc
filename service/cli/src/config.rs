//! Where the CLI finds tundrad and its token: flags, then the environment
//! (the provider's variables), then a named profile of the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::failure::Failure;

/// `~/.config/tundra/config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// The profile used when neither `--profile` nor `TUNDRA_PROFILE` names one.
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub endpoint: Option<String>,
    /// A file holding the API token (keep it 0600); preferred over `token`.
    pub token_file: Option<PathBuf>,
    pub token: Option<String>,
    pub project: Option<String>,
    /// PEM file of the CA that signed tundrad's certificate.
    pub ca_certificate_file: Option<PathBuf>,
}

/// What the flags said (before the environment and the profile).
#[derive(Debug, Default)]
pub struct Flags {
    pub endpoint: Option<String>,
    pub project: Option<String>,
    pub profile: Option<String>,
    pub config: Option<PathBuf>,
    pub ca_certificate: Option<PathBuf>,
}

/// Everything needed to make a client.
#[derive(Debug)]
pub struct Settings {
    pub endpoint: String,
    pub token: Option<String>,
    pub project: Option<String>,
    pub ca_pem: Option<String>,
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("tundra/config.toml"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn read(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("reading {what} {}: {e}", path.display())))
}

/// Resolve flags, environment and profile into settings.
pub fn resolve(flags: Flags) -> Result<Settings, Failure> {
    let explicit = flags.config.clone().or_else(|| env("TUNDRA_CLI_CONFIG").map(PathBuf::from));
    let path = explicit.clone().or_else(default_path);
    let file: File = match &path {
        Some(p) if p.exists() => toml::from_str(&read(p, "the config file")?)
            .map_err(|e| Failure::usage(format!("{} does not parse: {e}", p.display())))?,
        Some(p) if explicit.is_some() => {
            return Err(Failure::usage(format!("the config file {} does not exist", p.display())));
        }
        _ => File::default(),
    };
    let name = flags.profile.or_else(|| env("TUNDRA_PROFILE")).or(file.default_profile.clone());
    let profile = match &name {
        Some(n) => file.profiles.get(n).cloned().ok_or_else(|| {
            let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
            Failure::usage(format!(
                "no profile {n:?} in {}; profiles there: {}",
                path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the config file".into()),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        })?,
        None => Profile::default(),
    };
    let endpoint = flags.endpoint.or_else(|| env("TUNDRA_ENDPOINT")).or(profile.endpoint).ok_or_else(|| {
        Failure::usage(
            "no tundrad endpoint: set TUNDRA_ENDPOINT (e.g. http://127.0.0.1:8180), pass --endpoint, \
             or add a profile to ~/.config/tundra/config.toml (see `tundra --help`)",
        )
    })?;
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(Failure::usage(format!("endpoint {endpoint:?} is not an http:// or https:// URL")));
    }
    let token = match env("TUNDRA_TOKEN") {
        Some(t) => Some(t),
        None => match (&profile.token_file, profile.token) {
            (Some(f), _) => Some(read(f, "the token file")?.trim().to_string()),
            (None, t) => t,
        },
    };
    let ca = flags
        .ca_certificate
        .or_else(|| env("TUNDRA_CA_CERTIFICATE_FILE").map(PathBuf::from))
        .or(profile.ca_certificate_file);
    let ca_pem = match ca {
        Some(f) => Some(read(&f, "the CA certificate")?),
        None => None,
    };
    Ok(Settings {
        endpoint,
        token,
        project: flags.project.or_else(|| env("TUNDRA_PROJECT")).or(profile.project),
        ca_pem,
    })
}
