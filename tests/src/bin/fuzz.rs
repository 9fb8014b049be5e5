//! `make fuzz`: the in-repo fuzz harness for as long as asked, printing what it ran.
//! Usage: fuzz [SECONDS] [SEED]

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let start = std::time::Instant::now();
    let mut total = 0;
    while start.elapsed().as_secs() < seconds {
        total += taskflow_e2e::fuzz::run(seed, 1000).await;
        seed += 1;
    }
    println!("fuzz: {total} inputs in {:.0} s, seeds 1..{seed}, no property broken", start.elapsed().as_secs_f64());
}
