use super::*;
use std::sync::Mutex;
use taskflow_shared::fakes::InMemoryTaskStore;
use taskflow_shared::tasklog::InMemoryTaskLogs;

#[derive(Default)]
struct Recorded(Mutex<Vec<Value>>);

#[async_trait]
impl OrderBus for Recorded {
    async fn submit(&self, detail: &Value) -> Result<(), BusError> {
        self.0.lock().unwrap().push(detail.clone());
        Ok(())
    }
}

fn task(order_id: &str, owner: &str) -> TaskRecord {
    TaskRecord::new(order_id, owner, TaskStatus::Received, None, Utc::now())
}

fn api() -> Api<InMemoryTaskStore, Recorded> {
    Api { tasks: InMemoryTaskStore::with([task("o-alice", "alice"), task("o-2", "bob")]), bus: Recorded::default(), logs: InMemoryTaskLogs::default() }
}

#[tokio::test]
async fn an_order_is_submitted_as_the_caller() {
    let api = api();
    let answer = api.handle(Route::SubmitOrder, "alice", Some(r#"{"kind":"purchase","currency":"EUR","items":[]}"#)).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let sent = api.bus.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["owner"], "alice");
    assert_eq!(sent[0]["schemaVersion"], 1);
    let id = sent[0]["orderId"].as_str().unwrap();
    assert!(id.starts_with("ord-"), "{id}");
    assert_eq!(answer.body["orderId"], id);
}

#[tokio::test]
async fn the_bus_and_the_log_store_are_built_by_the_first_request_that_needs_them() {
    use crate::on_first_use::OnFirstUse;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (buses, stores) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (b, l) = (buses.clone(), stores.clone());
    let api = Api {
        tasks: InMemoryTaskStore::with([task("o-alice", "alice")]),
        bus: OnFirstUse::new(move || {
            b.fetch_add(1, Ordering::SeqCst);
            Recorded::default()
        }),
        logs: OnFirstUse::new(move || {
            l.fetch_add(1, Ordering::SeqCst);
            InMemoryTaskLogs::default()
        }),
    };
    assert_eq!(api.handle(Route::ReadTask("o-alice".into()), "alice", None).await.status, 200);
    assert_eq!(api.handle(Route::ListTasks, "alice", None).await.status, 200);
    assert_eq!((buses.load(Ordering::SeqCst), stores.load(Ordering::SeqCst)), (0, 0), "reads build neither");
    for _ in 0..2 {
        let answer = api.handle(Route::SubmitOrder, "alice", Some(r#"{"kind":"purchase","currency":"EUR","items":[]}"#)).await;
        assert_eq!(answer.status, 202, "{answer:?}");
    }
    assert_eq!(buses.load(Ordering::SeqCst), 1, "built once, by the first submission");
    assert_eq!(api.bus.get().0.lock().unwrap().len(), 2, "both orders reached the one bus");
    assert_eq!(stores.load(Ordering::SeqCst), 0, "no log read yet");
    api.handle(Route::ReadTaskLog("o-alice".into()), "alice", None).await;
    assert_eq!(stores.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn nobody_submits_an_order_for_someone_else() {
    let api = api();
    let answer = api.handle(Route::SubmitOrder, "alice", Some(r#"{"owner":"bob","kind":"purchase"}"#)).await;
    assert_eq!(answer.status, 403);
    assert!(api.bus.0.lock().unwrap().is_empty());
    for body in ["not json", "[1,2]", r#"{"orderId": 7}"#] {
        assert_eq!(api.handle(Route::SubmitOrder, "alice", Some(body)).await.status, 400, "{body}");
    }
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    assert_eq!(api.handle(Route::SubmitOrder, "alice", Some(&huge)).await.status, 413);
}

#[tokio::test]
async fn another_owners_task_is_not_found_and_never_shown() {
    let api = api();
    let mine = api.handle(Route::ReadTask("o-alice".into()), "alice", None).await;
    assert_eq!((mine.status, mine.body["owner"].as_str()), (200, Some("alice")));
    let theirs = api.handle(Route::ReadTask("o-2".into()), "alice", None).await;
    let missing = api.handle(Route::ReadTask("o-none".into()), "alice", None).await;
    assert_eq!(theirs.status, 404);
    assert_eq!(missing.status, 404);
    assert!(!theirs.body.to_string().contains("bob"), "{:?}", theirs.body);
    let list = api.handle(Route::ListTasks, "alice", None).await;
    let ids: Vec<&str> = list.body["tasks"].as_array().unwrap().iter().map(|t| t["orderId"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["o-alice"]);
}

#[tokio::test]
async fn no_caller_no_answer() {
    assert_eq!(api().handle(Route::ListTasks, "", None).await.status, 401);
}

#[test]
fn routes_are_api_gateway_route_keys() {
    assert_eq!(Route::from_key("GET /tasks/{orderId}", Some("o-1")), Some(Route::ReadTask("o-1".into())));
    assert_eq!(Route::from_key("POST /tasks", None), None);
}

#[tokio::test]
async fn a_subject_that_is_not_a_valid_owner_is_refused_with_a_4xx_before_anything_happens() {
    let api = api();
    for caller in ["bob/x", "../admin", ".", "..", "tab\tx", "a b", "x\u{202e}"] {
        for (route, body) in [(Route::SubmitOrder, Some(r#"{"kind":"purchase"}"#)), (Route::ListTasks, None), (Route::ReadTask("o-1".into()), None)] {
            let answer = api.handle(route, caller, body).await;
            assert_eq!((answer.status, answer.body["error"].as_str()), (403, Some("InvalidOwner")), "{caller:?}");
        }
    }
    assert!(api.bus.0.lock().unwrap().is_empty(), "nothing submitted");
    for caller in ["alice+shop@example.com", "李雷"] {
        assert_eq!(api.handle(Route::ListTasks, caller, None).await.status, 200, "{caller:?}");
    }
}

#[tokio::test]
async fn an_owners_own_conflicting_reuse_is_409_and_someone_elses_id_is_like_a_free_one() {
    let order = r#"{"orderId":"cart-42","kind":"purchase","currency":"EUR","paymentToken":"tok_approve","items":[{"sku":"A","quantity":1,"unitPrice":5}]}"#;
    let other = r#"{"orderId":"cart-42","kind":"purchase","currency":"EUR","paymentToken":"tok_approve","items":[{"sku":"A","quantity":2,"unitPrice":5}]}"#;
    // As intake records it: of the detail as it reaches the bus (owner and version set).
    let recorded = |body: &str, owner: &str| {
        let mut detail: serde_json::Value = serde_json::from_str(body).unwrap();
        detail["owner"] = owner.into();
        detail["schemaVersion"] = 1.into();
        Some(keys::order_fingerprint(&detail))
    };
    let mut mine = task("cart-42", "alice");
    mine.fingerprint = recorded(order, "alice");
    let mut bobs = task("cart-43", "bob");
    bobs.fingerprint = recorded(other, "bob");
    let api = Api { tasks: InMemoryTaskStore::with([mine, bobs]), bus: Recorded::default(), logs: InMemoryTaskLogs::default() };
    let conflict = api.handle(Route::SubmitOrder, "alice", Some(other)).await;
    assert_eq!((conflict.status, conflict.body["error"].as_str()), (409, Some("OrderIdConflict")), "{conflict:?}");
    assert!(api.bus.0.lock().unwrap().is_empty());
    assert_eq!(api.handle(Route::SubmitOrder, "alice", Some(order)).await.status, 202, "the same order again");
    // bob's cart-43 exists and alice's does not: alice gets exactly what a free id gets.
    let taken = api.handle(Route::SubmitOrder, "alice", Some(&other.replace("cart-42", "cart-43"))).await;
    let free = api.handle(Route::SubmitOrder, "alice", Some(&other.replace("cart-42", "cart-44"))).await;
    assert_eq!((taken.status, free.status), (202, 202));
    assert_eq!(taken.body["task"], "/tasks/cart-43");
    assert_eq!(api.handle(Route::ReadTask("cart-43".into()), "alice", None).await.status, 404);
    assert_eq!(api.handle(Route::ReadTask("cart-43".into()), "bob", None).await.status, 200);
    let bad = api.handle(Route::SubmitOrder, "alice", Some(r#"{"orderId":"../x","kind":"purchase"}"#)).await;
    assert_eq!((bad.status, bad.body["error"].as_str()), (400, Some("InvalidOrderId")));
}

#[tokio::test]
async fn an_owner_reads_their_own_task_log_and_another_owners_is_not_found() {
    let mut closed = TaskRecord::new("o-log", "alice", TaskStatus::Rejected, Some(Reason::UnknownSku), Utc::now());
    closed.currency = "EUR".into();
    let open = task("o-open", "alice");
    let bobs = TaskRecord::new("o-log", "bob", TaskStatus::Rejected, Some(Reason::UnknownSku), Utc::now());
    let api = Api { tasks: InMemoryTaskStore::with([closed.clone(), open, bobs.clone()]), bus: Recorded::default(), logs: InMemoryTaskLogs::default() };
    for t in [&closed, &bobs] {
        api.logs.write_once(&tasklog::key(t).unwrap(), &tasklog::render(t)).await.unwrap();
    }
    let mine = api.handle(Route::ReadTaskLog("o-log".into()), "alice", None).await;
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(mine.body["lines"][0]["owner"], "alice");
    assert_eq!(mine.body["lines"][1]["record"], "transition");
    assert_eq!(mine.body["key"], tasklog::key(&closed).unwrap());
    let not_closed = api.handle(Route::ReadTaskLog("o-open".into()), "alice", None).await;
    assert_eq!((not_closed.status, not_closed.body["error"].as_str()), (404, Some("NoTaskLog")));
    // carol has no order o-log; bob's and alice's are theirs alone.
    let none = api.handle(Route::ReadTaskLog("o-log".into()), "carol", None).await;
    assert_eq!((none.status, none.body["error"].as_str()), (404, Some("NotFound")));
    let missing = api.handle(Route::ReadTaskLog("o-none".into()), "alice", None).await;
    assert_eq!(missing, none_for("o-none"));
    assert_eq!(Route::from_key("GET /tasks/{orderId}/log", Some("o-1")), Some(Route::ReadTaskLog("o-1".into())));
}

fn none_for(order_id: &str) -> Answer {
    Answer { status: 404, body: json!({"error": "NotFound", "message": format!("no task {order_id}")}) }
}
