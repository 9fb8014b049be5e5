//! The console (`taskflow console`) in a real headless Chromium, driven over WebDriver
//! (chromedriver), against the real local stack: an order submitted with the CLI appears live;
//! its page shows the highlighted path, the timeline and the trace; a dead letter is redriven from
//! the UI; refunds above the approval threshold are approved and denied from the UI, and a closed
//! task's log opens from its page. Screenshots go to `target/console/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`make test` installs them when missing): a run
//! without them FAILS here, it does not pass.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use taskflow_contracts::keys;
use taskflow_e2e::{order_id, purchase, refund, stack, stack_state_dir, Run};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// One browser at a time: two cores are shared with the stack.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn screenshots() -> PathBuf {
    let dir = taskflow::paths::project_root().join("target/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.is_file()))
}

/// `taskflow console --port 0` on the test stack, as a user starts it; its URL.
struct Console {
    url: String,
    port: u16,
    _child: tokio::process::Child,
}

async fn console() -> Console {
    let dir = stack_state_dir();
    let mut cmd = taskflow::process::command(&taskflow::paths::bin_dir().join("taskflow"));
    cmd.arg("--state-dir").arg(&dir).args(["console", "--port", "0"]);
    serve(cmd).await
}

/// `taskflow --stack NAME console`: the stack found by name through CloudFormation with the
/// standard AWS configuration (here pointed at the emulator, as `deployed_stack.rs` does).
async fn deployed_console() -> Console {
    let info = stack();
    let mut cmd = taskflow::process::command(&taskflow::paths::bin_dir().join("taskflow"));
    cmd.envs(taskflow_e2e::aws_env())
        .env("TASKFLOW_STATE_DIR", std::env::temp_dir().join("taskflow-no-local-stack"))
        .args(["--stack", &info.stack_name, "console", "--port", "0"]);
    serve(cmd).await
}

async fn serve(mut cmd: tokio::process::Command) -> Console {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("taskflow console starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.expect("the console prints its URL").unwrap().unwrap();
    let url = first.strip_prefix("taskflow console: ").unwrap_or_else(|| panic!("unexpected first line {first:?}")).trim_end_matches('/').to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "the console listens on loopback: {url}");
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    // Keep reading its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Console { url, port, _child: child }
}

/// A headless Chromium through its own chromedriver, with a new empty profile.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    _profile: PathBuf,
}

async fn browser() -> Browser {
    let chromium = on_path("chromium").expect("no `chromium` on PATH: install Debian's chromium and chromium-driver (`make test` does: its `browser` prerequisite)");
    let chromedriver = on_path("chromedriver").expect("no `chromedriver` on PATH: install Debian's chromium-driver (`make test` does: its `browser` prerequisite)");
    let port = taskflow::process::free_port().unwrap();
    let mut cmd = taskflow::process::command(&chromedriver);
    // Its own process group, with the Chromium it starts: killed together when the test ends,
    // even by a panic that never closed the session.
    cmd.arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
    let driver = cmd.spawn().expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port} within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = std::env::temp_dir().join(format!("taskflow-console-chromium-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&profile).unwrap();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1366,768",
                     format!("--user-data-dir={}", profile.display())]
        }
    });
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");
    Browser { client, _driver: driver, _profile: profile }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self._driver.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}

impl Browser {
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(screenshots().join(name), png).unwrap();
    }

    async fn text(&self, css: &str) -> Option<String> {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.ok(),
            Err(_) => None,
        }
    }

    /// Waits (up to `wait`) until `css` matches and its text satisfies `ok`; reloads the page
    /// between tries when `reload`. Returns the text.
    async fn wait_text(&self, css: &str, wait: Duration, reload: bool, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let text = self.text(css).await;
            if let Some(t) = &text {
                if ok(t) {
                    return t.clone();
                }
            }
            if Instant::now() > deadline {
                let _ = self.shot("failure.png").await;
                panic!("{css}: {text:?} after {wait:?} (screenshot target/console/failure.png)");
            }
            if reload {
                self.client.refresh().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

fn cli(args: &[&str]) {
    let out = std::process::Command::new(taskflow::paths::bin_dir().join("taskflow"))
        .arg("--state-dir")
        .arg(stack_state_dir())
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "taskflow {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn an_order_submitted_with_the_cli_appears_live_and_its_page_shows_path_timeline_and_trace() {
    stack();
    let _one = BROWSER.lock().await;
    let console = console().await;
    let b = browser().await;
    b.client.goto(&format!("{}/", console.url)).await.unwrap();
    b.wait_text("#live", Duration::from_secs(20), false, |t| t.starts_with("Live:")).await;
    // Marks this page: a reload would lose it.
    b.client.execute("window.__sameDocument = 42; return 1;", vec![]).await.unwrap();

    // Owner text with characters that mean something in HTML: shown as text, nothing else.
    let owner = "o'brien&co";
    let id = order_id("console-live");
    let declined = order_id("console-declined");
    cli(&["submit", "purchase", "--owner", owner, "--item", "BOOK-1:1", "--order-id", &id]);
    cli(&["submit", "purchase", "--owner", owner, "--item", "BOOK-1:1", "--payment-token", "tok_decline", "--order-id", &declined]);
    let task = keys::task_id(owner, &id);
    let row = format!(r#"tr[data-task-id="{task}"]"#);
    b.wait_text(&format!("{row} td.status"), Duration::from_secs(60), false, |t| t == "COMPLETED").await;
    let same = b.client.execute("return window.__sameDocument;", vec![]).await.unwrap();
    assert_eq!(same, json!(42), "the row appeared without a reload");
    assert_eq!(b.text(&format!("{row} td:nth-child(2)")).await.as_deref(), Some(owner));
    assert_eq!(b.text(&format!("{row} td:first-child a")).await.as_deref(), Some(id.as_str()));
    b.wait_text(&format!(r#"tr[data-task-id="{}"] td.status"#, keys::task_id(owner, &declined)), Duration::from_secs(60), false, |t| t == "FAILED").await;
    // An order rejected for its owner and order id keeps them as sent: markup, shown as text.
    let hostile = format!(r#"<img src=x onerror="window.__xss=1">{}"#, uuid::Uuid::new_v4().simple());
    let detail = json!({"schemaVersion": 1, "orderId": hostile, "owner": "<b>mallory</b>", "kind": "purchase", "currency": "EUR",
        "items": [{"sku": "BOOK-1", "quantity": 1}], "paymentToken": "tok_approve"});
    let file = std::env::temp_dir().join(format!("console-hostile-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, detail.to_string()).unwrap();
    cli(&["submit", "file", file.to_str().unwrap()]);
    let find = format!(
        "for (const r of document.querySelectorAll('#tasks tbody tr')) {{ if (r.cells[0].textContent === {}) return [r.cells[1].textContent, r.cells[3].textContent, r.querySelectorAll('img, b').length]; }} return null;",
        serde_json::to_string(&hostile).unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let live_row = loop {
        let found = b.client.execute(&find, vec![]).await.unwrap();
        if !found.is_null() {
            break found;
        }
        assert!(Instant::now() < deadline, "the rejected order did not appear live");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(live_row, json!(["<b>mallory</b>", "REJECTED", 0]), "inserted live as text");
    b.shot("tasks-live.png").await;
    // Rendered by the server, the same.
    b.client.refresh().await.unwrap();
    b.wait_text("#tasks", Duration::from_secs(20), false, |t| t.contains("mallory")).await;
    assert_eq!(b.client.execute(&find, vec![]).await.unwrap(), json!(["<b>mallory</b>", "REJECTED", 0]), "rendered as text");
    assert_eq!(b.client.execute("return window.__xss === undefined;", vec![]).await.unwrap(), json!(true));

    // Its page: the path highlighted, the timeline, the trace.
    b.client.find(Locator::Css(&format!("{row} td:first-child a"))).await.unwrap().click().await.unwrap();
    let path = b.wait_text("#path", Duration::from_secs(20), false, |_| true).await;
    assert_eq!(path, "Purchase → NotifyOwner");
    for state in ["Purchase", "NotifyOwner"] {
        b.client.find(Locator::Css(&format!(r#"g.node.entered[data-state="{state}"]"#))).await.unwrap_or_else(|_| panic!("{state} highlighted"));
    }
    for state in ["Compensate", "NotifyFailure"] {
        assert!(b.client.find(Locator::Css(&format!(r#"g.node.entered[data-state="{state}"]"#))).await.is_err(), "{state} was not entered");
    }
    let walked = b.client.find_all(Locator::Css("path.edge.walked")).await.unwrap().len();
    assert_eq!(walked, 3, "start → Purchase → NotifyOwner → end");
    let timeline: Vec<String> = {
        let mut out = Vec::new();
        for li in b.client.find_all(Locator::Css("#timeline li .badge")).await.unwrap() {
            out.push(li.text().await.unwrap());
        }
        out
    };
    assert_eq!(timeline, ["RECEIVED", "CHARGING", "COMPLETED"]);
    // Segments reach the trace store a moment after the work: reload until they are there.
    let trace = b.wait_text("#waterfall", Duration::from_secs(30), true, |t| t.contains("intake") && t.contains("purchase") && t.contains("notification")).await;
    assert!(trace.contains("StartExecution"), "{trace}");
    assert!(b.text("#h-ledger + dl").await.unwrap_or_default().contains("12.50 EUR"));
    b.shot("task-completed.png").await;
    b.client.execute("document.getElementById('h-trace').scrollIntoView(); return 1;", vec![]).await.unwrap();
    b.shot("task-trace.png").await;

    // The declined order took the other branch.
    b.client.goto(&format!("{}/task/{}", console.url, keys::task_id(owner, &declined))).await.unwrap();
    assert_eq!(b.wait_text("#path", Duration::from_secs(20), false, |_| true).await, "Purchase → NotifyFailure");
    b.client.find(Locator::Css(r#"g.node.entered[data-state="NotifyFailure"]"#)).await.expect("NotifyFailure highlighted");
    assert!(b.client.find(Locator::Css(r#"g.node.entered[data-state="NotifyOwner"]"#)).await.is_err());
    b.wait_text("#waterfall", Duration::from_secs(30), true, |t| t.contains("notification")).await;
    b.shot("task-declined.png").await;
    b.close().await;
}

#[tokio::test]
async fn a_dead_letter_is_redriven_from_the_ui() {
    let info = stack();
    let _one = BROWSER.lock().await;
    let aws = info.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    // An order whose message died in intake's dead-letter queue (as the bus delivered it).
    let id = order_id("console-dlq");
    let envelope = json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "OrderSubmitted",
        "source": "taskflow.orders", "account": "000000000000", "time": chrono::Utc::now().to_rfc3339(),
        "region": info.region, "resources": [], "detail": purchase(&id, "dlq-owner", &[("BOOK-1", 1, 1250)], "tok_approve"),
    });
    let dlq = taskflow::dlq::find(info, "intake").unwrap();
    sqs.send_message().queue_url(&dlq.url).message_body(envelope.to_string()).send().await.unwrap();

    let console = console().await;
    let b = browser().await;
    b.client.goto(&format!("{}/dlq", console.url)).await.unwrap();
    b.wait_text(r#"tr[data-queue="intake"] td.depth"#, Duration::from_secs(20), true, |t| t == "1").await;
    b.shot("dlq.png").await;
    // A look inside, by keyboard-reachable link.
    b.client.find(Locator::Css(r#"tr[data-queue="intake"] a"#)).await.unwrap().click().await.unwrap();
    b.wait_text("article.message pre", Duration::from_secs(20), false, |t| t.contains(&id)).await;
    b.shot("dlq-inside.png").await;
    // Redrive.
    b.client.find(Locator::Css("button.redrive")).await.unwrap().click().await.unwrap();
    let outcome = b.wait_text("#outcome", Duration::from_secs(30), false, |_| true).await;
    assert_eq!(outcome, "1 message(s) sent back");
    b.shot("dlq-redriven.png").await;
    // Back in intake's queue, the order goes through.
    b.client.goto(&format!("{}/?q={id}", console.url)).await.unwrap();
    b.wait_text(&format!(r#"tr[data-task-id="{}"] td.status"#, keys::task_id("dlq-owner", &id)), Duration::from_secs(60), true, |t| t == "COMPLETED").await;
    b.client.goto(&format!("{}/dlq", console.url)).await.unwrap();
    b.wait_text(r#"tr[data-queue="intake"] td.depth"#, Duration::from_secs(20), true, |t| t == "0").await;
    // The metrics count it among the completed purchases.
    b.client.goto(&format!("{}/metrics", console.url)).await.unwrap();
    let latency = b.wait_text("#latency", Duration::from_secs(20), false, |_| true).await;
    assert!(latency.contains("purchase completed"), "{latency}");
    b.shot("metrics.png").await;
    b.close().await;
}

/// One raw HTTP/1.1 exchange with the console: (status, body).
async fn raw(port: u16, request: String) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

#[tokio::test]
async fn the_console_refuses_other_hosts_and_cross_site_or_tokenless_posts() {
    stack();
    let console = console().await;
    let p = console.port;
    let get = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (ok, page) = raw(p, get(&format!("127.0.0.1:{p}"))).await;
    assert_eq!(ok, 200);
    assert!(page.to_ascii_lowercase().contains("content-security-policy: default-src 'none'; script-src 'self'"), "{page}");
    // DNS rebinding: a page of another site, resolved to 127.0.0.1, names its own host.
    assert_eq!(raw(p, get(&format!("attacker.example:{p}"))).await.0, 421);
    let post = |extra: &str, body: &str| {
        format!("POST /dlq/refund/redrive HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}", body.len())
    };
    // No token, a wrong token, another site's origin: refused, nothing redriven.
    assert_eq!(raw(p, post("", "")).await.0, 403);
    assert_eq!(raw(p, post("", "csrf=0000")).await.0, 403);
    let (_, dlq) = raw(p, get(&format!("127.0.0.1:{p}")).replace("GET / ", "GET /dlq ")).await;
    let token = dlq.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    assert_eq!(raw(p, post("Origin: http://attacker.example\r\n", &format!("csrf={token}&dry_run=1"))).await.0, 403);
    assert_eq!(raw(p, post("Sec-Fetch-Site: cross-site\r\n", &format!("csrf={token}&dry_run=1"))).await.0, 403);
    // A GET cannot redrive.
    assert_eq!(raw(p, get(&format!("127.0.0.1:{p}")).replace("GET / ", "GET /dlq/intake/redrive ")).await.0, 405);
    // The console's own form (same origin, its token) is accepted: a dry run moves nothing.
    let (status, body) = raw(p, post(&format!("Origin: http://127.0.0.1:{p}\r\nSec-Fetch-Site: same-origin\r\n"), &format!("csrf={token}&dry_run=1"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("dry run: nothing moved"), "{body}");
}

#[tokio::test]
async fn the_console_reads_a_deployed_stack_by_name() {
    let console = deployed_console().await;
    let p = console.port;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nConnection: close\r\n\r\n");
    let (status, page) = raw(p, get("/")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("<code>{}</code>", stack().stack_name)), "{page}");
    let (status, page) = raw(p, get("/dlq")).await;
    assert_eq!(status, 200, "{page}");
    for queue in ["intake", "purchase", "refund", "notification", "publisher"] {
        assert!(page.contains(&format!(r#"data-queue="{queue}""#)), "{queue} in {page}");
    }
}

/// Waits until `owner`'s order `id` has `status` (read from the task table).
async fn until_status(run: &Run, owner: &str, id: &str, status: taskflow_contracts::TaskStatus) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let task = run.task_of(owner, id).await;
        if task.as_ref().is_some_and(|t| t.status == status) {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never became {status}: {task:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn refunds_awaiting_approval_are_approved_and_denied_from_the_ui_and_a_closed_task_opens_its_log() {
    use taskflow_contracts::{Decision, Reason, TaskStatus};
    stack();
    let _one = BROWSER.lock().await;
    let run = Run::new().await;
    // Two completed purchases of 150.00 EUR: a refund of either is above the approval threshold
    // (100.00 EUR, the template's default), so it waits AWAITING_APPROVAL for an operator.
    let owner = "d'arcy";
    let sku = run.new_sku("CONSOLE-APPR", 5, 15_000).await;
    let (bought_a, bought_d) = (order_id("console-bought-a"), order_id("console-bought-d"));
    for id in [&bought_a, &bought_d] {
        run.submit(purchase(id, owner, &[(&sku, 1, 15_000)], "tok_approve")).await;
    }
    let ended = run.all_until_terminal(&[bought_a.clone(), bought_d.clone()]).await;
    assert!(ended.values().all(|e| e.last().unwrap().status == TaskStatus::Completed), "{ended:?}");
    let (approve, deny) = (order_id("console-approve"), order_id("console-deny"));
    run.submit(refund(&approve, owner, &bought_a, None)).await;
    run.submit(refund(&deny, owner, &bought_d, Some(12_000))).await;
    until_status(&run, owner, &approve, TaskStatus::AwaitingApproval).await;
    until_status(&run, owner, &deny, TaskStatus::AwaitingApproval).await;
    let (approve_task, deny_task) = (keys::task_id(owner, &approve), keys::task_id(owner, &deny));

    // A console on the deployed stack (by name) holds no operators-group token: the buttons are
    // there, disabled, with the reason.
    {
        let deployed = deployed_console().await;
        let p = deployed.port;
        let (status, page) = raw(p, format!("GET /task/{deny_task} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nConnection: close\r\n\r\n")).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains(r#"class="danger" disabled>Deny refund"#), "{page}");
        assert!(page.contains("which the console does not hold"), "{page}");
    }

    let console = console().await;
    let b = browser().await;
    // The operators' view: the refunds awaiting approval.
    b.client.goto(&format!("{}/", console.url)).await.unwrap();
    b.client.find(Locator::Css("#awaiting a")).await.unwrap().click().await.unwrap();
    for task in [&approve_task, &deny_task] {
        b.wait_text(&format!(r#"tr[data-task-id="{task}"] td.status"#), Duration::from_secs(20), true, |t| t == "AWAITING_APPROVAL").await;
    }
    assert!(b.client.current_url().await.unwrap().as_str().ends_with("/?status=AWAITING_APPROVAL"));
    b.shot("approvals-awaiting.png").await;

    // Approve, with a reason, from the refund's page.
    b.client.find(Locator::Css(&format!(r#"tr[data-task-id="{approve_task}"] td:first-child a"#))).await.unwrap().click().await.unwrap();
    b.client.find(Locator::Css(r#"form[data-action="approve"] input[name="reason"]"#)).await.unwrap().send_keys("long-standing customer").await.unwrap();
    b.client.find(Locator::Css(r#"form[data-action="approve"] button"#)).await.unwrap().click().await.unwrap();
    b.wait_text("#done", Duration::from_secs(20), false, |t| t.starts_with("Approved")).await;
    until_status(&run, owner, &approve, TaskStatus::Completed).await;
    b.wait_text("#timeline li:last-child .badge", Duration::from_secs(20), true, |t| t == "COMPLETED").await;
    assert!(b.text("#approval").await.unwrap_or_default().contains("Approved by operator"), "who decided is shown");
    assert!(b.client.find(Locator::Css("form.action")).await.is_err(), "no action left on a completed refund");
    b.shot("approval-approved.png").await;
    let task = run.task_of(owner, &approve).await.unwrap();
    let decided = task.approval.clone().unwrap();
    assert_eq!((decided.decision, decided.by.as_str(), decided.reason.as_deref()), (Decision::Approved, "operator", Some("long-standing customer")));
    assert_eq!(task.refunded, 15_000);

    // Deny: the reason is required — the browser will not send the form without it, and the
    // console refuses it when sent anyway (its own token, its own origin), deciding nothing.
    b.client.goto(&format!("{}/task/{deny_task}", console.url)).await.unwrap();
    b.client.find(Locator::Css(r#"form[data-action="deny"] button"#)).await.unwrap().click().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(b.client.find(Locator::Css("#done")).await.is_err(), "an empty reason is not sent");
    let p = console.port;
    let (_, page) = raw(p, format!("GET /task/{deny_task} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nConnection: close\r\n\r\n")).await;
    let csrf = page.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let body = format!("csrf={csrf}&reason=+++");
    let (status, refused) = raw(
        p,
        format!("POST /task/{deny_task}/action/deny HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nOrigin: http://127.0.0.1:{p}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused.contains("ReasonRequired"), "{refused}");
    assert_eq!(run.task_of(owner, &deny).await.unwrap().status, TaskStatus::AwaitingApproval);
    b.client.find(Locator::Css(r#"form[data-action="deny"] input[name="reason"]"#)).await.unwrap().send_keys("the goods <never> came back").await.unwrap();
    b.client.find(Locator::Css(r#"form[data-action="deny"] button"#)).await.unwrap().click().await.unwrap();
    b.wait_text("#done", Duration::from_secs(20), false, |t| t.starts_with("Denied")).await;
    until_status(&run, owner, &deny, TaskStatus::Rejected).await;
    let facts = b.wait_text("dl.facts.task", Duration::from_secs(20), true, |t| t.contains("REFUND_DENIED")).await;
    assert!(facts.contains("the goods <never> came back"), "the reason, as text: {facts}");
    b.shot("approval-denied.png").await;
    let task = run.task_of(owner, &deny).await.unwrap();
    assert_eq!((task.reason, task.approval.map(|a| a.decision)), (Some(Reason::RefundDenied), Some(Decision::Denied)));
    assert_eq!(task.refunded, 0, "nothing refunded");

    // The completed refund's task log: linked from its page once written, opened in the console.
    b.client.goto(&format!("{}/task/{approve_task}", console.url)).await.unwrap();
    b.wait_text(r#"ul.docs a[href$="/log"]"#, Duration::from_secs(30), true, |t| t == "task log").await;
    b.client.find(Locator::Css(r#"ul.docs a[href$="/log"]"#)).await.unwrap().click().await.unwrap();
    let log = b.wait_text("#log", Duration::from_secs(20), false, |_| true).await;
    assert!(log.contains(&format!(r#""orderId":"{approve}""#)) && log.contains("COMPLETED") && log.contains("AWAITING_APPROVAL"), "{log}");
    b.shot("task-log.png").await;
    b.close().await;
    run.close().await;
}
