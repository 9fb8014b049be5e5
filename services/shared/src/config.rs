//! Configuration comes from the environment the template gives each function; nothing is
//! hard-coded, so the same binary runs on AWS and on the local stack.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is not a valid {expected}: {value:?}")]
    Invalid { name: &'static str, expected: &'static str, value: String },
}

/// A variable the function cannot run without.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// A number with a default when the variable is absent.
pub fn number_or<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            expected: "number",
            value,
        }),
        Err(_) => Ok(default),
    }
}
