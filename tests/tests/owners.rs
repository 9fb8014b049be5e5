//! Owners and order ids, end to end, as an outside producer on the bus sees them: an order id is
//! its owner's own (another owner's choice of the same id can neither drop, overwrite nor reveal
//! it), every owner-id rule is refused before anything is charged, and each valid owner's
//! receipts and notices live under a prefix no other owner has.

use std::collections::HashMap;
use std::time::Duration;
use taskflow_contracts::{keys, OwnerId, TaskStatus, TaskStatusChanged};
use taskflow_e2e::{order_id, purchase, Run};

/// Status events of order `id`, per owner, until each of `owners` has a terminal one.
async fn events_by_owner(run: &Run, id: &str, owners: &[&str]) -> HashMap<String, Vec<TaskStatusChanged>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut seen: HashMap<String, Vec<TaskStatusChanged>> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    loop {
        let done = owners.iter().all(|o| seen.get(*o).is_some_and(|events| events.iter().any(|e| e.status.is_terminal())));
        if done {
            for events in seen.values_mut() {
                events.sort_by_key(|e| e.sequence);
            }
            return seen;
        }
        assert!(tokio::time::Instant::now() < deadline, "{id}: not every owner's order ended: {seen:?}");
        for event in run.feed.next(Duration::from_secs(2)).await.unwrap() {
            if event.order_id == id && ids.insert(event.event_id.clone()) {
                seen.entry(event.owner.clone()).or_default().push(event);
            }
        }
    }
}

fn unique(label: &str) -> String {
    format!("{label}{}", &order_id("x")[4..12])
}

#[tokio::test(flavor = "multi_thread")]
async fn two_owners_with_one_order_id_each_end_correctly_and_neither_can_observe_the_others() {
    let run = Run::new().await;
    let sku = run.new_sku("OWN", 10, 700).await;
    let (alice, bob) = (unique("alice-"), unique("bob-"));
    let id = order_id("cart");
    run.submit(purchase(&id, &alice, &[(&sku, 1, 700)], "tok_approve")).await;
    run.submit(purchase(&id, &bob, &[(&sku, 2, 700)], "tok_approve")).await;

    let events = events_by_owner(&run, &id, &[&alice, &bob]).await;
    for (owner, amount) in [(&alice, 700), (&bob, 1400)] {
        let mine = &events[owner.as_str()];
        let statuses: Vec<TaskStatus> = mine.iter().map(|e| e.status).collect();
        assert_eq!(statuses, [TaskStatus::Received, TaskStatus::Charging, TaskStatus::Completed], "{owner}: {mine:?}");
        let task = run.task_of(owner, &id).await.expect("each owner has their task");
        assert_eq!((task.owner.as_str(), task.order_id.as_str(), task.status, task.amount), (owner.as_str(), id.as_str(), TaskStatus::Completed, amount));
        assert!(mine.iter().all(|e| e.event_id.starts_with(&format!("{}#", task.task_id))), "event ids are the task's own");
        let entry = run.ledger_of(owner, &id).await.expect("a ledger entry each");
        assert_eq!((entry.owner.as_str(), entry.charged), (owner.as_str(), amount));
    }
    assert_eq!(run.available(&sku).await, 10 - 3, "both orders reserved their own stock");
    let (a, b) = (run.task_of(&alice, &id).await.unwrap(), run.task_of(&bob, &id).await.unwrap());
    assert_ne!(a.task_id, b.task_id);
    let sfn = aws_sdk_sfn::Client::new(&run.aws);
    let (ea, eb) = (run.execution_of(&a).unwrap(), run.execution_of(&b).unwrap());
    assert_ne!(ea, eb, "two executions");
    for arn in [&ea, &eb] {
        let status = sfn.describe_execution().execution_arn(arn).send().await.unwrap().status;
        assert_eq!(status.as_str(), "SUCCEEDED", "{arn}");
    }
    assert_ne!(a.charge_id, b.charge_id, "two charges: bob's charge key is not alice's");

    // Neither sees the other's order: receipts under separate prefixes, listed separately.
    for (owner, other) in [(&alice, &b), (&bob, &a)] {
        let prefix = keys::receipts_prefix(&OwnerId::parse(owner).unwrap());
        let listed = run.objects(&prefix).await;
        assert!(!listed.is_empty() && listed.iter().all(|k| !other.receipts.contains(k)), "{owner}: {listed:?} vs {:?}", other.receipts);
        let task = run.task_of(owner, &id).await.unwrap();
        assert!(task.receipts.iter().all(|k| k.starts_with(&prefix)), "{:?}", task.receipts);
    }

    // Alice reuses her order id for something else: her order stands, and she is told.
    run.submit(purchase(&id, &alice, &[(&sku, 5, 700)], "tok_approve")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let conflict = loop {
        assert!(tokio::time::Instant::now() < deadline, "no status event told alice about her conflicting reuse");
        let events: Vec<TaskStatusChanged> = run.feed.next(Duration::from_secs(5)).await.unwrap();
        if let Some(e) = events.into_iter().find(|e| e.order_id == id && e.owner == alice) {
            break e;
        }
    };
    assert_eq!((conflict.status, conflict.reason.as_deref()), (TaskStatus::Rejected, Some("ORDER_ID_CONFLICT")), "{conflict:?}");
    assert_ne!(conflict.event_id, format!("{}#1", a.task_id), "announced apart from her order's events");
    // The same conflicting event again, and her original order again: nothing new.
    run.submit(purchase(&id, &alice, &[(&sku, 5, 700)], "tok_approve")).await;
    run.submit(purchase(&id, &alice, &[(&sku, 1, 700)], "tok_approve")).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = run.tasks_with_order_id(&id).await;
    assert_eq!(all.len(), 3, "alice's order, bob's order and one conflict record: {all:?}");
    let again = run.task_of(&alice, &id).await.unwrap();
    assert_eq!((again.status, again.amount, again.history.len()), (TaskStatus::Completed, 700, 3), "her order untouched");
    assert_eq!(run.task_of(&bob, &id).await.unwrap().history.len(), 3, "his order untouched");
    assert_eq!(run.available(&sku).await, 7, "nothing reserved for the conflict");
    let late: Vec<TaskStatusChanged> = run.feed.next(Duration::from_secs(1)).await.unwrap();
    assert!(late.iter().all(|e| e.order_id != id), "no further event: {late:?}");
    run.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_owner_id_rule_is_refused_before_a_charge_and_unusual_owners_get_a_prefix_only_they_have() {
    let run = Run::new().await;
    let sku = run.new_sku("OWNR", 20, 500).await;
    let u = unique("");
    let refused = [
        format!("bob/{u}"),
        "../admin".to_string(),
        ".".to_string(),
        "..".to_string(),
        format!(".{u}"),
        format!("{u}."),
        format!("back\\slash{u}"),
        format!("space {u}"),
        format!("tab\t{u}"),
        format!("line\n{u}"),
        format!("nul\u{0}{u}"),
        format!("zero\u{200b}width{u}"),
        format!("bidi\u{202e}{u}"),
        format!("\u{212b}ngstrom{u}"),
        format!("{u}{}", "o".repeat(255)),
        String::new(),
    ];
    let mut ids = Vec::new();
    for (i, owner) in refused.iter().enumerate() {
        let id = order_id(&format!("badowner{i}"));
        run.submit(purchase(&id, owner, &[(&sku, 1, 500)], "tok_approve")).await;
        ids.push(id);
    }
    let all = run.all_until_terminal(&ids).await;
    for (owner, id) in refused.iter().zip(&ids) {
        let events = &all[id];
        assert_eq!(events.len(), 1, "{owner:?}: {events:?}");
        assert_eq!((events[0].status, events[0].reason.as_deref()), (TaskStatus::Rejected, Some("INVALID_OWNER")), "{owner:?}");
        let task = run.task(id).await;
        assert!(task.task_id.starts_with("r-"), "{owner:?}: not keyed under any owner's order id");
        assert!(task.receipts.is_empty() && task.execution_arn.is_none() && run.execution_of(&task).is_none() && task.charge_id.is_none());
        assert_eq!(run.provider(id).await, (0, 0, 0, 0), "{owner:?}: nothing charged");
        assert!(run.ledger(id).await.is_none());
    }
    assert_eq!(run.available(&sku).await, 20, "nothing reserved");

    // Valid, unusual owners: each order completes and its receipt and notice are under a prefix
    // that is theirs alone.
    let valid = [format!("shopper+{u}@example.com"), format!("josé.{u}"), format!("李雷{u}"), format!("o'brien-{u}@example.ie")];
    let mut ids = Vec::new();
    for (i, owner) in valid.iter().enumerate() {
        let id = order_id(&format!("goodowner{i}"));
        run.submit(purchase(&id, owner, &[(&sku, 1, 500)], "tok_approve")).await;
        ids.push(id);
    }
    let all = run.all_until_terminal(&ids).await;
    let mut prefixes = Vec::new();
    for (owner, id) in valid.iter().zip(&ids) {
        assert_eq!(all[id].last().unwrap().status, TaskStatus::Completed, "{owner}: {:?}", all[id]);
        assert_eq!(&all[id].last().unwrap().owner, owner, "the event is addressed to the owner as sent");
        let prefix = keys::receipts_prefix(&OwnerId::parse(owner).unwrap());
        assert!(prefix["receipts/".len()..prefix.len() - 1].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{prefix}");
        let mut task = run.task(id).await;
        for _ in 0..50 {
            if !task.receipts.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            task = run.task(id).await;
        }
        assert_eq!(task.receipts, vec![format!("{prefix}{id}/COMPLETED.txt")], "{owner}");
        assert_eq!(run.objects(&prefix).await, task.receipts, "{owner}: their prefix holds their receipt only");
        assert_eq!(run.outbox(owner, id).await.len(), 1, "{owner}: one notice under their outbox prefix");
        prefixes.push(prefix);
    }
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            assert!(!a.starts_with(b.as_str()) && !b.starts_with(a.as_str()), "{a} and {b} overlap");
        }
    }
    run.close().await;
}
