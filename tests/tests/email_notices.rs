//! Notices by email (`Notifier=ses`) end to end, on a local stack that delivers every SQS batch
//! twice: the notification function sends through the emulator's SES v2 `SendEmail` from the
//! verified sender identity, to the owner's verified address in the user pool (the user whose
//! `sub` is the owner), exactly one email per notice, with the receipt's subject and amounts;
//! an owner with no verified address gets none; SES refuses an unverified sender, as on AWS.
//! The sent messages are read from the emulator's own record (moto's `/moto-api/data.json`).

use std::time::Duration;
use taskflow::local::{Faults, LOCAL_SENDER};
use taskflow_contracts::TaskStatus;
use taskflow_e2e::{iam_denials, order_id, purchase, stack, stack_with, Run};
use taskflow_shared::tasklog;

/// A user of the local owner pool with `email` (verified or not); returns their `sub`, the
/// owner id their orders carry.
async fn user(run: &Run, email: &str, verified: bool) -> String {
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&run.aws);
    let attribute = |name: &str, value: &str| aws_sdk_cognitoidentityprovider::types::AttributeType::builder().name(name).value(value).build().unwrap();
    let out = cognito
        .admin_create_user()
        .user_pool_id(stack().output("OwnerPoolId").expect("the local stack has a user pool"))
        .username(email)
        .user_attributes(attribute("email", email))
        .user_attributes(attribute("email_verified", if verified { "true" } else { "false" }))
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    let user = out.user().unwrap();
    user.attributes().iter().find(|a| a.name() == "sub").and_then(|a| a.value()).unwrap().to_string()
}

/// Every message the emulator's SES accepted: (to, subject, body).
async fn sent() -> Vec<(Vec<String>, String, String)> {
    let endpoint = stack().endpoint.clone().unwrap();
    let data: serde_json::Value = get_json(&format!("{endpoint}/moto-api/data.json")).await;
    let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .map(|m| {
            let to = m["destinations"]["ToAddresses"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default();
            (to, m["subject"].as_str().unwrap_or_default().to_string(), m["body"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

async fn get_json(url: &str) -> serde_json::Value {
    let url = url.strip_prefix("http://").unwrap();
    let (host, path) = url.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {}", &body[..body.len().min(300)]))
}

/// Waits until the task's notice went out (its receipt is noted after the send).
async fn notified(run: &Run, owner: &str, id: &str) {
    for _ in 0..300 {
        if run.task_of(owner, id).await.is_some_and(|t| tasklog::ready(&t)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} was never notified");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_notice_is_one_email_to_the_owners_verified_address_under_duplicate_deliveries() {
    stack_with(|options| {
        options.email_notices(LOCAL_SENDER);
        options.faults = Faults { duplicate_deliveries: true, ..Faults::default() };
    });
    let run = Run::new().await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (buyer_email, unverified_email) = (format!("buyer-{tag}@example.com"), format!("new-{tag}@example.com"));
    let buyer = user(&run, &buyer_email, true).await;
    let unverified = user(&run, &unverified_email, false).await;
    let sku = run.new_sku("MAILBOOK", 10, 1250).await;
    let (bought, declined, quiet) = (order_id("mail-buy"), order_id("mail-decline"), order_id("mail-quiet"));
    run.submit(purchase(&bought, &buyer, &[(&sku, 2, 1250)], "tok_approve")).await;
    run.submit(purchase(&declined, &buyer, &[(&sku, 1, 1250)], "tok_decline")).await;
    run.submit(purchase(&quiet, &unverified, &[(&sku, 1, 1250)], "tok_approve")).await;
    let all = run.all_until_terminal(&[bought.clone(), declined.clone(), quiet.clone()]).await;
    assert_eq!(all[&bought].last().unwrap().status, TaskStatus::Completed);
    assert_eq!(all[&declined].last().unwrap().status, TaskStatus::Failed);
    for (owner, id) in [(&buyer, &bought), (&buyer, &declined), (&unverified, &quiet)] {
        notified(&run, owner, id).await;
    }
    // Let late duplicate deliveries run out before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mail = sent().await;
    let about = |id: &str| mail.iter().filter(|(_, subject, _)| subject.contains(id)).cloned().collect::<Vec<_>>();
    let receipt = about(&bought);
    assert_eq!(receipt.len(), 1, "one email for the completed order: {mail:?}");
    assert_eq!(receipt[0].0, [buyer_email.clone()], "to the owner's verified address");
    assert_eq!(receipt[0].1, format!("Receipt for your purchase {bought}"));
    assert!(receipt[0].2.contains("25.00 EUR") && receipt[0].2.contains("12.50 EUR"), "the amounts: {}", receipt[0].2);
    assert!(receipt[0].2.starts_with("<!DOCTYPE html>"), "the emulator keeps the HTML part");
    let failure = about(&declined);
    assert_eq!(failure.len(), 1, "one email for the declined order: {mail:?}");
    assert_eq!(failure[0].0, [buyer_email.clone()]);
    assert!(failure[0].1.contains("FAILED") && failure[0].1.contains("PAYMENT_DECLINED"), "{}", failure[0].1);
    assert!(about(&quiet).is_empty(), "no verified address, no email");
    assert!(!mail.iter().any(|(to, _, _)| to.contains(&unverified_email)));
    // Not through the outbox: the ses adapter was chosen.
    assert!(run.outbox(&buyer, &bought).await.is_empty());

    // SES sends from verified identities only, locally as on AWS.
    let ses = aws_sdk_sesv2::Client::new(&run.aws);
    let text = aws_sdk_sesv2::types::Content::builder().data("x").build().unwrap();
    let refused = ses
        .send_email()
        .from_email_address("someone-else@example.org")
        .destination(aws_sdk_sesv2::types::Destination::builder().to_addresses(&buyer_email).build())
        .content(
            aws_sdk_sesv2::types::EmailContent::builder()
                .simple(aws_sdk_sesv2::types::Message::builder().subject(text.clone()).body(aws_sdk_sesv2::types::Body::builder().text(text).build()).build())
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(aws_sdk_sesv2::error::DisplayErrorContext(&refused).to_string().contains("not verified"), "{refused:?}");
    assert_eq!(iam_denials().await, Vec::<serde_json::Value>::new(), "ses:SendEmail and cognito-idp:ListUsers are granted");
    run.close().await;
}
