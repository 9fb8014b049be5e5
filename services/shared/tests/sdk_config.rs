//! `clients::load` with region and credentials in the environment (as Lambda and the local host
//! give them) is the configuration the full default chains give. Alone in its test binary: it
//! sets the process's environment.

use aws_credential_types::provider::ProvideCredentials;
use taskflow_shared::clients;

#[tokio::test]
async fn the_environment_providers_give_what_the_default_chains_give() {
    // SAFETY: the only test in this binary, before any other thread reads the environment.
    unsafe {
        std::env::set_var("AWS_REGION", "eu-west-3");
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        std::env::set_var("AWS_SESSION_TOKEN", "session-token");
        std::env::set_var("AWS_ACCOUNT_ID", "123456789012");
        std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:4566");
        std::env::set_var("AWS_MAX_ATTEMPTS", "4");
    }
    assert!(clients::env_region_and_credentials(|name| std::env::var(name).ok()));
    let ours = clients::load().await;
    let chains = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(clients::http_client()).load().await;

    assert_eq!(ours.region(), chains.region());
    assert_eq!(ours.region().map(|r| r.as_ref()), Some("eu-west-3"));
    assert_eq!(ours.endpoint_url(), chains.endpoint_url());
    assert_eq!(ours.endpoint_url(), Some("http://127.0.0.1:4566"));
    assert_eq!(ours.retry_config(), chains.retry_config());
    assert_eq!(ours.retry_config().map(|r| r.max_attempts()), Some(4));
    assert_eq!(ours.timeout_config(), chains.timeout_config());
    assert_eq!(format!("{:?}", ours.behavior_version()), format!("{:?}", chains.behavior_version()));

    let credentials = |config: &aws_config::SdkConfig| config.credentials_provider().expect("a credentials provider");
    let (a, b) = (credentials(&ours).provide_credentials().await.unwrap(), credentials(&chains).provide_credentials().await.unwrap());
    assert_eq!(
        (a.access_key_id(), a.secret_access_key(), a.session_token(), a.account_id().map(|id| id.as_str())),
        (b.access_key_id(), b.secret_access_key(), b.session_token(), b.account_id().map(|id| id.as_str()))
    );
    assert_eq!((a.access_key_id(), a.session_token(), a.account_id().map(|id| id.as_str())), ("AKIDEXAMPLE", Some("session-token"), Some("123456789012")));
}
