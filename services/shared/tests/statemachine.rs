//! The state machine and the services agree: the work messages its callback steps send read as
//! the contract types, every callback step is bounded in time and never ASL-retried, and the error
//! names it branches on are the ones the services emit.

use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use taskflow_contracts::{NotificationWork, Outcome, PurchaseWork, RefundPurpose, RefundWork};

/// The workflows, one per kind of order.
const WORKFLOWS: [&str; 2] = ["purchase", "refund"];

fn source(workflow: &str) -> String {
    std::fs::read_to_string(format!("{}/../../statemachine/{workflow}.asl.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The callback steps' seconds are template parameters (`DefinitionSubstitutions`), written
/// unquoted so they become numbers; their values are set by the rule `infra/local/lint.py
/// callbacks` checks. Stand-ins of the right kind here: the heartbeat below the timeout.
const SECONDS_PLACEHOLDERS: [(&str, &str); 4] = [
    ("${CallbackHeartbeatSeconds}", "320"),
    ("${CallbackTimeoutSeconds}", "1500"),
    ("${ApprovalReminderSeconds}", "172800"),
    ("${ApprovalFinalSeconds}", "86400"),
];

/// The refund workflow's waits for a person (an operator's decision on a refund above the
/// approval threshold): a task token nobody works on, so no heartbeat and no queue-wait rule;
/// bounded by the approval deadline's parameters instead.
const APPROVAL_WAITS: [&str; 2] = ["\"TimeoutSeconds\": ${ApprovalReminderSeconds},", "\"TimeoutSeconds\": ${ApprovalFinalSeconds},"];

fn approval_waits(text: &str) -> usize {
    APPROVAL_WAITS.iter().map(|w| text.matches(w).count()).sum()
}

fn definition(workflow: &str) -> Value {
    let mut text = source(workflow);
    for (placeholder, stand_in) in SECONDS_PLACEHOLDERS {
        text = text.replace(placeholder, stand_in);
    }
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_callback_step_takes_its_seconds_from_the_template_parameters() {
    for workflow in WORKFLOWS {
        let text = source(workflow);
        // Every worker's callback step (all but the waits for a person).
        let steps = text.matches(".waitForTaskToken\"").count() - approval_waits(&text);
        assert!(steps > 0);
        assert_eq!(text.matches("\"HeartbeatSeconds\": ${CallbackHeartbeatSeconds},").count(), steps, "{workflow}");
        assert_eq!(text.matches("\"TimeoutSeconds\": ${CallbackTimeoutSeconds},").count(), steps, "{workflow}");
        assert_eq!(text.matches("\"HeartbeatSeconds\"").count(), steps, "{workflow}: no other heartbeat");
    }
}

fn states(def: &Value) -> &Map<String, Value> {
    def["States"].as_object().unwrap()
}

/// Resolves a JSONPath-style `Parameters` object the way Step Functions does, for the paths the
/// definition uses (`$`, `$.field`, `$$.Task.Token`).
fn render(params: &Value, input: &Value) -> Value {
    match params {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match k.strip_suffix(".$") {
                    Some(key) => {
                        let path = v.as_str().unwrap();
                        let value = match path {
                            "$$.Task.Token" => json!("token-123"),
                            "$" => input.clone(),
                            p => input[p.strip_prefix("$.").unwrap()].clone(),
                        };
                        (key.to_string(), value)
                    }
                    None => (k.clone(), render(v, input)),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn order() -> Value {
    json!({"schemaVersion": 1, "orderId": "o-1", "owner": "alice", "kind": "purchase",
           "items": [{"sku": "A", "quantity": 1, "unitPrice": 100}], "currency": "EUR", "paymentToken": "tok_approve"})
}

#[test]
fn callback_steps_send_the_contract_work_messages() {
    let def = definition("purchase");
    let s = states(&def);
    let body = |state: &str, input: &Value| render(&s[state]["Parameters"]["MessageBody"], input);
    let refunds = definition("refund");

    let purchase: PurchaseWork = serde_json::from_value(body("Purchase", &order())).unwrap();
    assert_eq!(purchase.order.order_id, "o-1");
    assert_eq!(purchase.task_token.expose(), "token-123");

    let refund: RefundWork = serde_json::from_value(render(&states(&refunds)["Refund"]["Parameters"]["MessageBody"], &order())).unwrap();
    assert_eq!(refund.purpose, RefundPurpose::Refund);
    let mut out_of_stock = order();
    out_of_stock["failure"] = json!({"Error": "OutOfStock"});
    let compensation: RefundWork = serde_json::from_value(body("Compensate", &out_of_stock)).unwrap();
    assert_eq!((compensation.purpose, compensation.order.order_id.as_str()), (RefundPurpose::Compensation, "o-1"));
    assert_eq!(compensation.failure.unwrap().error, taskflow_contracts::errors::OUT_OF_STOCK);
    // Only a declined payment is known to have charged nothing; every other failure of a purchase
    // is compensated (refund whatever was charged, release whatever was reserved).
    let purchase_catches = &s["Purchase"]["Catch"];
    assert_eq!(purchase_catches[0]["ErrorEquals"], json!([taskflow_contracts::errors::PAYMENT_DECLINED]));
    assert_eq!(purchase_catches[0]["Next"], "NotifyFailure");
    assert_eq!(purchase_catches[1]["ErrorEquals"], json!(["States.ALL"]));
    assert_eq!(purchase_catches[1]["Next"], "Compensate");

    let owner: NotificationWork = serde_json::from_value(body("NotifyOwner", &order())).unwrap();
    assert_eq!(owner.outcome, Outcome::Completed);

    let mut failed_input = order();
    failed_input["failure"] = json!({"Error": "PaymentDeclined", "Cause": "card_declined"});
    let failure: NotificationWork = serde_json::from_value(body("NotifyFailure", &failed_input)).unwrap();
    assert_eq!(failure.outcome, Outcome::Failed);
    assert_eq!(failure.failure.unwrap().error, taskflow_contracts::errors::PAYMENT_DECLINED);
}

#[test]
fn every_callback_step_is_bounded_and_caught_but_never_asl_retried() {
    let defs: Vec<Value> = WORKFLOWS.iter().map(|w| definition(w)).collect();
    for (name, state) in defs.iter().flat_map(states) {
        let waits_for_a_person = state["Parameters"]["MessageBody"]["purpose"].as_str().is_some_and(|p| p == "request" || p == "remind");
        if waits_for_a_person {
            // Bounded by the approval deadline, its expiry caught (a timeout on the emulator and
            // on AWS: States.Timeout), never retried, every other error caught.
            assert!(state.get("HeartbeatSeconds").is_none(), "{name}: nobody heartbeats a person's decision");
            assert!(state["TimeoutSeconds"].as_u64().is_some_and(|t| t > 0), "{name} has TimeoutSeconds");
            assert!(state.get("Retry").is_none(), "{name}: a Retry would reuse a spent task token");
            let catches = state["Catch"].as_array().expect("Catch");
            assert_eq!(catches[0]["ErrorEquals"], json!(["States.Timeout", "States.HeartbeatTimeout"]), "{name}");
            assert!(catches.iter().any(|c| c["ErrorEquals"] == json!(["States.ALL"])), "{name} catches everything");
            continue;
        }
        if state["Resource"].as_str().is_some_and(|r| r.ends_with(".waitForTaskToken")) {
            assert!(state["HeartbeatSeconds"].as_u64().is_some(), "{name} has HeartbeatSeconds");
            let timeout = state["TimeoutSeconds"].as_u64().expect("TimeoutSeconds");
            assert!(timeout > state["HeartbeatSeconds"].as_u64().unwrap(), "{name}: timeout above heartbeat");
            assert!(state.get("Retry").is_none(), "{name}: a Retry would reuse a spent task token");
            let catches = state["Catch"].as_array().expect("Catch");
            assert!(catches.iter().any(|c| c["ErrorEquals"] == json!(["States.ALL"])), "{name} catches everything");
        }
    }
}

#[test]
fn every_transition_lands_on_a_state_and_every_state_is_reachable() {
    for workflow in WORKFLOWS {
        transitions_land_on_states(&definition(workflow));
    }
}

fn transitions_land_on_states(def: &Value) {
    let s = states(def);
    let mut targets = BTreeSet::from([def["StartAt"].as_str().unwrap().to_string()]);
    for state in s.values() {
        for next in [&state["Next"], &state["Default"]] {
            if let Some(n) = next.as_str() {
                targets.insert(n.to_string());
            }
        }
        for branch in state["Choices"].as_array().into_iter().chain(state["Catch"].as_array()).flatten() {
            targets.insert(branch["Next"].as_str().unwrap().to_string());
        }
        let ends = state["End"] == json!(true) || matches!(state["Type"].as_str(), Some("Fail" | "Succeed" | "Choice"));
        assert!(ends || state["Next"].is_string(), "{state}: no Next and no End");
    }
    let names: BTreeSet<String> = s.keys().cloned().collect();
    assert_eq!(targets, names, "transitions and states differ");
}

#[test]
fn the_placeholders_are_exactly_the_templates_substitutions() {
    let text: String = WORKFLOWS.iter().map(|w| source(w)).collect();
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml")).unwrap();
    let placeholders: BTreeSet<&str> = text.split("${").skip(1).map(|rest| rest.split('}').next().unwrap()).collect();
    assert_eq!(
        placeholders,
        BTreeSet::from([
            "ApprovalFinalSeconds",
            "ApprovalQueueUrl",
            "ApprovalReminderSeconds",
            "CallbackHeartbeatSeconds",
            "CallbackTimeoutSeconds",
            "NotificationQueueUrl",
            "PurchaseQueueUrl",
            "RefundQueueUrl"
        ])
    );
    for p in placeholders {
        assert!(template.contains(&format!("        {p}: ")), "template substitutes {p}");
    }
}

#[test]
fn a_failed_order_ends_its_execution_after_telling_the_owner_and_only_breakage_fails_it() {
    for workflow in WORKFLOWS {
        let def = definition(workflow);
        let s = states(&def);
        // Declined, compensated or a failed refund: the owner is told and the execution succeeds
        // (one state fewer, and ExecutionsFailed means the workflow broke).
        assert_eq!(s["NotifyFailure"]["End"], json!(true), "{workflow}");
        for (name, state) in s.iter().filter(|(_, st)| st["Type"] == "Fail") {
            assert_eq!(state["Error"], "NotificationFailed", "{workflow} {name}: only an owner who could not be told fails the execution");
        }
    }
}

#[test]
fn each_workflow_starts_with_its_work_and_a_purchase_succeeds_in_two_states() {
    // Intake starts the workflow of the order's kind: no state is spent routing (make bench
    // counts the transitions: each state entered is billed).
    let purchase = definition("purchase");
    assert_eq!(purchase["StartAt"], "Purchase");
    assert_eq!(states(&purchase)["Purchase"]["Next"], "NotifyOwner");
    assert_eq!(states(&purchase)["NotifyOwner"]["End"], json!(true));
    assert_eq!(definition("refund")["StartAt"], "Refund");
}

#[test]
fn a_refund_above_the_threshold_waits_for_a_person_then_is_refunded_denied_or_expired() {
    use taskflow_contracts::{errors, ApprovalPurpose, ApprovalWork};
    let refund = definition("refund");
    let s = states(&refund);
    let catches = s["Refund"]["Catch"].as_array().unwrap();
    assert_eq!((catches[0]["ErrorEquals"].clone(), catches[0]["Next"].as_str()), (json!([errors::APPROVAL_REQUIRED]), Some("AwaitApproval")));
    // Approved: Refund again (the refund service trusts the decision on the task, not the message).
    assert_eq!(s["AwaitApproval"]["Next"], "Refund");
    assert_eq!(s["AwaitApprovalAfterReminder"]["Next"], "Refund");
    assert_eq!(s["AwaitApproval"]["Catch"][0]["Next"], "AwaitApprovalAfterReminder");
    assert_eq!(s["AwaitApprovalAfterReminder"]["Catch"][0]["Next"], "ExpireApproval");
    assert_eq!(s["ExpireApproval"]["Catch"][0]["Next"], "NotifyFailure");
    // Denied (RefundDenied) or expired: the owner is told.
    assert_eq!(s["AwaitApproval"]["Catch"][1]["Next"], "NotifyFailure");
    for (state, purpose) in [("AwaitApproval", ApprovalPurpose::Request), ("AwaitApprovalAfterReminder", ApprovalPurpose::Remind), ("ExpireApproval", ApprovalPurpose::Expire)] {
        let mut input = order();
        input["kind"] = json!("refund");
        input["refundOf"] = json!("o-0");
        let work: ApprovalWork = serde_json::from_value(render(&s[state]["Parameters"]["MessageBody"], &input)).unwrap();
        assert_eq!(work.purpose, purpose, "{state}");
    }
}
