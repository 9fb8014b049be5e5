//! A short run of the fuzz harness (`make fuzz` runs it for longer).

#[tokio::test]
async fn mutated_inputs_break_no_decoder_or_handler() {
    let seeds = taskflow_e2e::fuzz::seeds();
    assert!(seeds.len() >= 10, "seeds from contracts/examples");
    for seed in seeds.iter() {
        taskflow_e2e::fuzz::exercise(seed).await;
    }
    assert_eq!(taskflow_e2e::fuzz::run(7, 20_000).await, 20_000);
}
