//! The AWS shared files, read as the AWS CLI and SDKs read them, for what
//! the environment does not set: `object_store` reads only the `AWS_*`
//! variables.
//!
//! - credentials: `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`,
//!   section `[PROFILE]`: `aws_access_key_id`, `aws_secret_access_key`,
//!   `aws_session_token` (also taken from the config file's profile);
//! - `AWS_CONFIG_FILE`, else `~/.aws/config`, section `[profile PROFILE]`
//!   (`[default]` for the default profile): `region`, `endpoint_url`;
//! - PROFILE: `AWS_PROFILE`, else `default`.
//!
//! The variables win, and credentials come as a set: with
//! `AWS_ACCESS_KEY_ID` in the environment, no key is read from a file.

use std::collections::HashMap;
use std::path::PathBuf;

/// What the shared files give for the current profile.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shared {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn file(var_name: &str, default: &str) -> Option<PathBuf> {
    var(var_name)
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".aws").join(default)))
}

/// The `key = value` lines of section `want` of an INI file.
fn section(text: &str, want: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == want;
            continue;
        }
        if let (true, Some((k, v))) = (inside, t.split_once('=')) {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// The settings of the shared files the environment lacks.
pub fn shared() -> Shared {
    let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let read = |path: Option<PathBuf>| path.and_then(|p| std::fs::read_to_string(p).ok());
    let creds = read(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"))
        .map(|t| section(&t, &profile))
        .unwrap_or_default();
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let config = read(file("AWS_CONFIG_FILE", "config"))
        .map(|t| section(&t, &config_section))
        .unwrap_or_default();
    let get = |k: &str| creds.get(k).or_else(|| config.get(k)).cloned();
    let mut s = Shared::default();
    if var("AWS_ACCESS_KEY_ID").is_none() {
        s.access_key_id = get("aws_access_key_id");
        s.secret_access_key = get("aws_secret_access_key");
        s.session_token = get("aws_session_token");
    }
    if var("AWS_REGION").is_none() && var("AWS_DEFAULT_REGION").is_none() {
        s.region = config.get("region").cloned();
    }
    if var("AWS_ENDPOINT_URL").is_none() && var("AWS_ENDPOINT").is_none() {
        s.endpoint = config.get("endpoint_url").cloned();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::section;

    #[test]
    fn sections_are_read_as_the_aws_cli_reads_them() {
        let text = "# c\n[default]\naws_access_key_id = K1\n\n[profile  ci]\nregion=eu-west-1\nAWS_SECRET_ACCESS_KEY = S = 2\n[ci]\nregion = no\n";
        assert_eq!(section(text, "default")["aws_access_key_id"], "K1");
        let ci = section(text, "profile ci");
        assert_eq!(ci["region"], "eu-west-1");
        assert_eq!(ci["aws_secret_access_key"], "S = 2");
        assert_eq!(section(text, "ci")["region"], "no");
        assert!(section(text, "other").is_empty());
    }
}
