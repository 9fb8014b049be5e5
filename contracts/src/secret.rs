//! Values that must never reach a log: their `Debug` and `Display` are redacted, and only
//! `expose()` gives the real value to the one call that needs it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(#[schemars(length(min = 1, max = $max))] String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The real value, for the one call that must send it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
    };
}

secret!(
    /// The Step Functions task token a work message carries: whoever holds it can answer the step.
    /// 1–2048 characters (Step Functions API reference, SendTaskSuccess `taskToken`).
    TaskToken,
    max = crate::limits::TASK_TOKEN_MAX_CHARS
);
secret!(
    /// The customer's payment method token, handed to the payment provider only (at most
    /// `limits::MAX_PAYMENT_TOKEN_CHARS`).
    PaymentToken,
    max = crate::limits::MAX_PAYMENT_TOKEN_CHARS
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let token = TaskToken::new("AAAA-secret-token");
        assert!(!format!("{token:?}").contains("secret"));
        assert!(!format!("{token}").contains("secret"));
        assert_eq!(token.expose(), "AAAA-secret-token");
        let json = serde_json::to_string(&PaymentToken::new("tok_approve")).unwrap();
        assert_eq!(json, "\"tok_approve\"");
    }
}
