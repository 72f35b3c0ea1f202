//! Passwords: where they come from and how long they live.
//!
//! A password is never written to the history database. A desktop user's password lives in the
//! operating system's keyring (Secret Service, Keychain, Credential Manager); a headless run is
//! given one by its caller (an environment variable or a file) and keeps it in memory only.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ground::EngineError;

/// The keyring service name every Lyrebird secret is filed under.
pub const KEYRING_SERVICE: &str = "lyrebird";

/// A password in memory. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the digest computation and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

/// Where to read a password from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum PasswordSource {
    /// The named environment variable.
    Env { var: String },
    /// The first line of a file (for secrets mounted by an orchestrator).
    File { path: PathBuf },
    /// The OS keyring entry for this account address.
    Keyring { account: String },
}

impl PasswordSource {
    /// Reads the password now. Errors say where the password was expected, never what it is.
    pub fn resolve(&self) -> Result<Password, EngineError> {
        match self {
            PasswordSource::Env { var } => std::env::var(var).map(Password).map_err(|_| {
                EngineError::InvalidConfig(format!("environment variable {var} holds no password"))
            }),
            PasswordSource::File { path } => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    EngineError::InvalidConfig(format!("password file {}: {e}", path.display()))
                })?;
                let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
                if line.is_empty() {
                    return Err(EngineError::InvalidConfig(format!(
                        "password file {} is empty",
                        path.display()
                    )));
                }
                Ok(Password(line.to_owned()))
            }
            PasswordSource::Keyring { account } => {
                let entry = keyring::Entry::new(KEYRING_SERVICE, account)
                    .map_err(|e| EngineError::Keyring(e.to_string()))?;
                entry
                    .get_password()
                    .map(Password)
                    .map_err(|e| EngineError::Keyring(e.to_string()))
            }
        }
    }
}

/// Files a password in the OS keyring for `account` (the desktop's "remember password").
pub fn store_in_keyring(account: &str, password: &Password) -> Result<(), EngineError> {
    keyring::Entry::new(KEYRING_SERVICE, account)
        .and_then(|entry| entry.set_password(password.expose()))
        .map_err(|e| EngineError::Keyring(e.to_string()))
}

/// Reads the password filed for `account`; an error when there is none or no keyring.
pub fn read_keyring(account: &str) -> Result<Password, EngineError> {
    PasswordSource::Keyring {
        account: account.to_owned(),
    }
    .resolve()
}

/// Removes the password filed for `account`, if any.
pub fn delete_from_keyring(account: &str) -> Result<(), EngineError> {
    keyring::Entry::new(KEYRING_SERVICE, account)
        .and_then(|entry| entry.delete_credential())
        .map_err(|e| EngineError::Keyring(e.to_string()))
}

/// Whether this machine has a keyring that can hold passwords. A missing entry counts as
/// a working keyring; no backend, no secret service or a locked-out store does not.
pub fn keyring_available() -> bool {
    match keyring::Entry::new(KEYRING_SERVICE, "lyrebird-keyring-probe") {
        Ok(entry) => matches!(entry.get_password(), Ok(_) | Err(keyring::Error::NoEntry)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let p = Password::new("hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn file_source_reads_first_line_and_rejects_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\r\nignored\n").unwrap();
        let p = PasswordSource::File { path: path.clone() }
            .resolve()
            .unwrap();
        assert_eq!(p.expose(), "s3cret");
        std::fs::write(&path, "").unwrap();
        let err = PasswordSource::File { path }.resolve().unwrap_err();
        assert!(err.to_string().contains("empty"));
    }

    #[test]
    fn missing_env_var_names_the_variable() {
        let err = PasswordSource::Env {
            var: "LYREBIRD_TEST_NO_SUCH_VAR".into(),
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("LYREBIRD_TEST_NO_SUCH_VAR"));
    }
}
