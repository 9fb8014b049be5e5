//! HTML for the console: escaping and the page frame. Every piece of text that reaches a page
//! goes through [`esc`] (or [`attr`]): owner ids, order ids, reasons, message bodies and segment
//! names are caller text.

use std::fmt::Write;

/// `text` escaped for an HTML text node or a double-quoted attribute value (`& < > " '`).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
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

/// `text` as a URL path segment or query value: everything but unreserved characters
/// (RFC 3986 §2.3) percent-encoded, so caller text can never end a path or start a query.
pub fn url(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Which item of the navigation is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Tasks,
    DeadLetters,
    Metrics,
    None,
}

/// A whole page: the frame (header, navigation, stack name) around `body`.
pub fn page(title: &str, stack: &str, nav: Nav, body: &str) -> String {
    let item = |which: Nav, href: &str, label: &str| {
        let current = if which == nav { r#" aria-current="page""# } else { "" };
        format!(r#"<li><a href="{href}"{current}>{label}</a></li>"#)
    };
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · taskflow console</title>
<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/app.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<span class="brand">taskflow</span>
<nav aria-label="Sections"><ul>{tasks}{dlq}{metrics}</ul></nav>
{stack}
</header>
<main id="main" tabindex="-1">
{body}
</main>
</body>
</html>
"##,
        title = esc(title),
        stack = if stack.is_empty() { String::new() } else { format!(r#"<span class="stack" title="the stack this console reads">stack <code>{}</code></span>"#, esc(stack)) },
        tasks = item(Nav::Tasks, "/", "Tasks"),
        dlq = item(Nav::DeadLetters, "/dlq", "Dead letters"),
        metrics = item(Nav::Metrics, "/metrics", "Metrics"),
    )
}

/// A status as a badge (its class names the status for colour; the text says it too).
pub fn status_badge(status: &str) -> String {
    format!(r#"<span class="badge s-{}">{}</span>"#, esc(&status.to_ascii_lowercase()), esc(status))
}

/// Minor units as `12.50 EUR` (two decimals: the currencies taskflow accepts all have two).
/// `minor` units as `units.cents CURRENCY`; "–" for a task with no currency (an order rejected at
/// intake was never priced: its 0 is not an amount).
pub fn money(minor: u64, currency: &str) -> String {
    if currency.is_empty() {
        return "–".into();
    }
    format!("{}.{:02} {}", minor / 100, minor % 100, esc(currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unpriced_task_shows_no_amount_and_a_priced_one_its_units() {
        assert_eq!(money(0, ""), "–");
        assert_eq!(money(1999, "EUR"), "19.99 EUR");
        assert_eq!(money(5, "<b>"), "0.05 &lt;b&gt;");
    }

    #[test]
    fn caller_text_cannot_make_markup_or_leave_its_url_segment() {
        let owner = r#"<script>alert("x")</script>'&"#;
        assert_eq!(esc(owner), "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;");
        assert_eq!(url("a/b?c=d#e f"), "a%2Fb%3Fc%3Dd%23e%20f");
        assert_eq!(url("李"), "%E6%9D%8E");
        let page = page(owner, owner, Nav::Tasks, "");
        assert!(!page.contains("<script>alert"), "{page}");
    }
}
