use super::*;
use std::sync::Mutex;
use taskflow_shared::fakes::InMemoryTaskStore;

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
    Api { tasks: InMemoryTaskStore::with([task("o-alice", "alice"), task("o-2", "bob")]), bus: Recorded::default() }
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
