//! AWS client setup, done once per process at init (never per message).
//!
//! `aws_config` reads region, credentials and `AWS_ENDPOINT_URL` from the environment, which is
//! how the local stack points the very same code at the emulator.

pub use aws_config::SdkConfig;

pub async fn load() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
