//! The OIDC access token a VO robot logs in with (`fedsite probe`, `fedsite check
//! --os-auth-url`): `--access-token FILE` (its first line, as ARGO's probes read it), else
//! `--os-access-token` / `OS_ACCESS_TOKEN` (docs/sitecheck.md). Owns only that precedence.

use std::path::Path;

use sitecheck::probe::TokenFileError;

/// The token: the file's when one is named (an unreadable or empty file is an error, never a
/// fall back to the variable), else `value`.
pub fn access_token(file: Option<&Path>, value: Option<&str>) -> Result<Option<String>, TokenFileError> {
    match file {
        Some(f) => sitecheck::probe::read_token_file(f).map(Some),
        None => Ok(value.map(str::to_string)),
    }
}
