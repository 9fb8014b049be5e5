//! `taskflow --stack NAME` talks to a deployed stack through its CloudFormation outputs and the
//! standard AWS configuration. The local stack is a CloudFormation stack on the emulator too, so
//! the same path is exercised here with `AWS_ENDPOINT_URL` pointing at it. Also what a user of
//! the CLI meets first: a `cancel` straight after a `submit`, and how an order rejected at intake
//! is printed.

use taskflow_contracts::TaskStatus;
use taskflow_e2e::{order_id, purchase, stack, stack_state_dir, Run};

fn taskflow(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(taskflow::paths::bin_dir().join("taskflow"))
        .args(args)
        .envs(taskflow_e2e::aws_env())
        // Nothing local to fall back on: the stack file is not where it would be looked for.
        .env("TASKFLOW_STATE_DIR", std::env::temp_dir().join("taskflow-no-local-stack"))
        .output()
        .expect("the taskflow binary runs (cargo build --workspace)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_a_deployed_stack_by_name() {
    let run = Run::new().await;
    let sku = run.new_sku("DEPLOYED", 3, 400).await;
    let id = order_id("deployed");
    run.submit(purchase(&id, "dana", &[(&sku, 1, 400)], "tok_approve")).await;
    assert_eq!(run.events_until_terminal(&id).await.last().unwrap().status, TaskStatus::Completed);

    let (ok, text) = taskflow(&["--stack", &stack().stack_name, "status", &id]);
    assert!(ok && text.contains("COMPLETED") && text.contains("dana"), "{text}");
    let (ok, text) = taskflow(&["--stack", &stack().stack_name, "tasks", "--owner", "dana", "--json"]);
    assert!(ok && text.contains(&id), "{text}");

    let (ok, text) = taskflow(&["--stack", "no-such-stack", "status", &id]);
    assert!(!ok && text.contains("no-such-stack") && text.contains("does not exist"), "{text}");
    run.close().await;
}

/// The CLI on the local stack's own state directory (`.taskflow/stack.json`), as `taskflow up`'s
/// user runs it.
fn taskflow_local(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(taskflow::paths::bin_dir().join("taskflow"))
        .args(args)
        .env("TASKFLOW_STATE_DIR", stack_state_dir())
        .output()
        .expect("the taskflow binary runs (cargo build --workspace)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

/// `taskflow submit` returns once the bus took the order, before intake has recorded it; a
/// `taskflow cancel` right after must find it all the same, not answer `OrderNotFound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_cancels_an_order_it_submitted_a_moment_before() {
    let run = Run::new().await;
    let sku = run.new_sku("CLICANCEL", 9, 400).await;
    let owner = format!("erin-{}", &order_id("x")[4..]);
    let item = format!("{sku}:1");
    for round in 0..3 {
        let id = order_id("clicancel");
        let (ok, text) = taskflow_local(&["submit", "purchase", "--owner", &owner, "--item", &item, "--order-id", &id]);
        assert!(ok, "{text}");
        let (ok, text) = taskflow_local(&["cancel", &id, "--owner", &owner]);
        assert!(!text.contains("OrderNotFound"), "round {round}: the order was submitted just before: {text}");
        // Either the cancel landed before the charge, or the charge won the race and it is refused.
        assert!((ok && text.contains("CANCELLED")) || (!ok && text.contains("OrderAlreadyCharged")), "round {round}: {text}");
        let last = run.events_until_terminal(&id).await.last().unwrap().status;
        assert!([TaskStatus::Cancelled, TaskStatus::Completed].contains(&last), "round {round}: {last:?}: {text}");
    }

    // An order of this owner's that was never submitted is still not found (after the wait).
    let (ok, text) = taskflow_local(&["cancel", &order_id("never"), "--owner", &owner]);
    assert!(!ok && text.contains("OrderNotFound"), "{text}");
    // An id or owner no order can have is refused by name, not waited for and not found.
    let (ok, text) = taskflow_local(&["cancel", "../x", "--owner", &owner]);
    assert!(!ok && text.contains("InvalidOrderId"), "{text}");
    let (ok, text) = taskflow_local(&["cancel", &order_id("never"), "--owner", "b o b"]);
    assert!(!ok && text.contains("InvalidOwner"), "{text}");
    run.close().await;
}

/// An order rejected at intake was never priced: `status` prints no amount line and `tasks` no
/// amount, rather than `0` and an empty currency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_no_empty_currency_for_an_order_rejected_at_intake() {
    let run = Run::new().await;
    let (id, owner) = (order_id("cliunknown"), format!("fay-{}", &order_id("x")[4..]));
    let name = &stack().stack_name;
    let (ok, text) = taskflow(&["--stack", name, "submit", "purchase", "--owner", &owner, "--item", "NO-SUCH-SKU:1", "--order-id", &id]);
    assert!(ok, "{text}");
    assert_eq!(run.events_until_terminal(&id).await.last().unwrap().status, TaskStatus::Rejected);

    let (ok, text) = taskflow(&["--stack", name, "status", &id, "--owner", &owner]);
    assert!(ok && text.contains("REJECTED (UNKNOWN_SKU)"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("amount")), "no amount for an order never priced: {text}");
    let (ok, text) = taskflow(&["--stack", name, "tasks", "--owner", &owner]);
    let row = text.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{id} not listed: {text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(ok && cells.contains(&"-") && !cells.contains(&"0"), "the amount cell is \"-\", not \"0 \": {row}");
    run.close().await;
}
