//! `taskflow --stack NAME` talks to a deployed stack through its CloudFormation outputs and the
//! standard AWS configuration. The local stack is a CloudFormation stack on the emulator too, so
//! the same path is exercised here with `AWS_ENDPOINT_URL` pointing at it.

use taskflow_contracts::TaskStatus;
use taskflow_e2e::{order_id, purchase, stack, Run};

fn taskflow(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(taskflow::paths::bin_dir().join("taskflow"))
        .args(args)
        .env("AWS_ENDPOINT_URL", stack().endpoint.as_deref().unwrap())
        .env("AWS_REGION", &stack().region)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
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
