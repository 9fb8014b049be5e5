//! Notices by email: the notifier adapter on Amazon SES v2 (`NOTIFIER=ses`).
//!
//! # Who receives it
//!
//! Owners are ids, not addresses. The address comes from the owner's account, never from an
//! order: [`Recipients`] looks the owner up in the Cognito user pool the HTTP API signs owners in
//! with (`OWNER_POOL_ID`), as the user whose `sub` is the owner id, and answers that user's
//! `email` attribute only if `email_verified` is `true` (Cognito verified it by a code sent to it).
//! No caller can name an address for another owner: an order carries no address at all, an
//! owner id that is no user's `sub` has no address, and a user can only change their own
//! `email` (which makes it unverified until they confirm it). A notice to an owner with no
//! verified address is not sent: it is logged (`error = "NoVerifiedAddress"`) and counted
//! (`NoticesUndeliverable`); the receipt is still stored, and the owner reads it with
//! `GET /tasks/{orderId}` and the receipt key.
//!
//! # What is sent
//!
//! One `SendEmail` (SES API v2) from `SENDER_ADDRESS` (a verified SES identity: SES refuses any
//! other sender with `MessageRejected`, as the local emulator does), through the configuration set
//! `CONFIGURATION_SET` (bounces and complaints go to the account's suppression list and are
//! published as events, see the template), with the receipt's subject, its plain text, and the
//! same text as HTML ([`html`], every character of the receipt escaped).
//!
//! # Once
//!
//! The notification service guards every send with its idempotency record
//! (`{taskId}/notice/{STATUS}`): duplicate deliveries of a step find it COMPLETE (or INPROGRESS and
//! come back later) and send nothing. A delivery that dies *between* SES accepting the message and
//! the record becoming COMPLETE leaves the claim INPROGRESS; after its hold expires the next
//! delivery takes it over and sends again — SES `SendEmail` has no idempotency key, so in that
//! window (milliseconds, a crashed process) an owner can get the same notice twice. That is the
//! deliberate choice: a second copy of a receipt over a lost one.

use crate::notifier::{DeliveryError, Notice, Notifier};
use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use taskflow_contracts::OwnerId;

/// Where an owner's email address comes from.
#[async_trait]
pub trait Recipients: Send + Sync {
    /// The owner's verified address, or `None` if they have none.
    async fn address(&self, owner: &OwnerId) -> Result<Option<String>, DeliveryError>;
}

/// The Cognito user pool the owners sign in with: the user whose `sub` is the owner id.
pub struct CognitoRecipients {
    client: aws_sdk_cognitoidentityprovider::Client,
    pool_id: String,
}

impl CognitoRecipients {
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, pool_id: impl Into<String>) -> Self {
        Self { client: aws_sdk_cognitoidentityprovider::Client::new(aws.sdk_config()), pool_id: pool_id.into() }
    }
}

/// The user's verified email among their attributes (`email` when `email_verified` is `true`).
pub fn verified_email<'a>(attributes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let (mut email, mut verified) = (None, false);
    for (name, value) in attributes {
        match name {
            "email" => email = Some(value.to_string()),
            "email_verified" => verified = value == "true",
            _ => {}
        }
    }
    email.filter(|_| verified)
}

#[async_trait]
impl Recipients for CognitoRecipients {
    async fn address(&self, owner: &OwnerId) -> Result<Option<String>, DeliveryError> {
        // ListUsers filters by `sub` exactly (`=`). An owner id holds no `"` or `\` (OwnerId's
        // rules), so it cannot break out of the quoted value.
        let out = self
            .client
            .list_users()
            .user_pool_id(&self.pool_id)
            .filter(format!("sub = \"{}\"", owner.as_str()))
            .limit(2)
            .send()
            .await
            .map_err(|e| DeliveryError(aws_sdk_cognitoidentityprovider::error::DisplayErrorContext(&e).to_string()))?;
        let users = out.users();
        if users.len() != 1 {
            return Ok(None);
        }
        Ok(verified_email(users[0].attributes().iter().map(|a| (a.name(), a.value().unwrap_or_default()))))
    }
}

/// Text escaped for HTML element content and attribute values: `& < > " '`.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The notice as an HTML document: the subject as its title and heading, the receipt's text as
/// preformatted text (its columns line up as in the plain-text part), all of it escaped.
pub fn html(notice: &Notice) -> String {
    let subject = escape_html(&notice.subject);
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{subject}</title></head>\n<body>\n<h1 style=\"font-family:sans-serif;font-size:18px\">{subject}</h1>\n<pre style=\"font-family:monospace;font-size:14px\">{}</pre>\n</body></html>\n",
        escape_html(&notice.body)
    )
}

/// SES v2 `SendEmail`, to the owner's verified address.
pub struct SesNotifier<R> {
    client: aws_sdk_sesv2::Client,
    sender: String,
    configuration_set: Option<String>,
    recipients: R,
}

impl<R: Recipients> SesNotifier<R> {
    /// `sender`: a verified SES identity's address; `configuration_set`: `None` or empty for none.
    pub fn new(aws: &impl taskflow_shared::clients::ClientSource, sender: impl Into<String>, configuration_set: Option<String>, recipients: R) -> Self {
        Self {
            client: aws_sdk_sesv2::Client::new(aws.sdk_config()),
            sender: sender.into(),
            configuration_set: configuration_set.filter(|c| !c.is_empty()),
            recipients,
        }
    }
}

fn utf8(text: &str) -> Result<Content, DeliveryError> {
    Content::builder().data(text).charset("UTF-8").build().map_err(|e| DeliveryError(e.to_string()))
}

#[async_trait]
impl<R: Recipients> Notifier for SesNotifier<R> {
    async fn send(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let owner = OwnerId::parse(&notice.to).map_err(|e| DeliveryError(e.to_string()))?;
        let Some(address) = self.recipients.address(&owner).await? else {
            tracing::warn!(order_id = notice.order_id.as_str(), error = "NoVerifiedAddress", "owner has no verified email address; notice not emailed (the receipt is stored)");
            taskflow_shared::metrics::count("NoticesUndeliverable", &[("Service", "notification")]);
            return Ok(());
        };
        let message = Message::builder()
            .subject(utf8(&notice.subject)?)
            .body(Body::builder().text(utf8(&notice.body)?).html(utf8(&html(notice))?).build())
            .build();
        let out = self
            .client
            .send_email()
            .from_email_address(&self.sender)
            .destination(Destination::builder().to_addresses(address).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| DeliveryError(aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string()))?;
        tracing::info!(order_id = notice.order_id.as_str(), message_id = out.message_id().unwrap_or_default(), "notice emailed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(subject: &str, body: &str) -> Notice {
        Notice { to: "alice".into(), order_id: "o-1".into(), subject: subject.into(), receipt_key: "receipts/YWxpY2U/o-1/COMPLETED.txt".into(), body: body.into() }
    }

    #[test]
    fn html_escapes_everything_a_receipt_may_quote() {
        let doc = html(&notice("Your order <o-1> is FAILED: \"x\" & 'y'", "Reason    sku \"<script>alert(1)</script>\"\n  BOOK-1  2 × 12.50 EUR"));
        assert!(!doc.contains("<script>") && !doc.contains("<o-1>"), "{doc}");
        assert!(doc.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(doc.contains("<title>Your order &lt;o-1&gt; is FAILED: &quot;x&quot; &amp; &#39;y&#39;</title>"));
        assert!(doc.contains("2 × 12.50 EUR"), "text other than markup stays as it is");
        assert_eq!(escape_html("a&b"), "a&amp;b");
    }

    #[test]
    fn only_a_verified_email_is_an_address() {
        assert_eq!(verified_email([("sub", "u-1"), ("email", "a@example.com"), ("email_verified", "true")]), Some("a@example.com".into()));
        assert_eq!(verified_email([("email", "a@example.com"), ("email_verified", "false")]), None);
        assert_eq!(verified_email([("email", "a@example.com")]), None);
        assert_eq!(verified_email([("email_verified", "true")]), None);
    }
}
