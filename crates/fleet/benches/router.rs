//! Routing decision time: `Router::choose` per policy on the example fleet (56 replicas, six sites), over
//! requests from every region and SLO class against loads that change between decisions; prints nanoseconds
//! per decision (median of 5 runs of 1M decisions). `cargo bench -p fleet --bench router`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use fleet::{Fleet, FleetState, Policy, RouteRequest, Router};

const DECISIONS: usize = 1_000_000;

/// A small deterministic generator, so every policy sees the same requests and loads.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fleet");
    let fleet = Fleet::read(&data.join("example.toml")).unwrap();
    let router = Router::new(std::sync::Arc::new(fleet.clone()));
    let start = 1_700_150_000.0;
    let mut random = Xorshift(0x9e37_79b9_7f4a_7c15);
    let requests: Vec<RouteRequest> = (0..4096)
        .map(|_| RouteRequest {
            model: 0,
            prompt_tokens: 200 + random.below(4000) as u32,
            output_tokens: 20 + random.below(500) as u32,
            region: random.below(fleet.user_regions.len()),
            slo: random.below(fleet.slo_classes.len()),
        })
        .collect();
    println!("{} replicas, {} sites", fleet.replicas.len(), fleet.sites.len());
    for policy in Policy::ALL {
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let mut state = FleetState::idle(&fleet, start);
                let mut random = Xorshift(42);
                let started = Instant::now();
                for index in 0..DECISIONS {
                    // Loads move between decisions as they would under traffic.
                    let replica = random.below(fleet.replicas.len());
                    state.loads[replica].decoding = random.below(64) as u32;
                    state.loads[replica].prefill_free_at_s = start + random.below(3) as f64;
                    let request = &requests[index % requests.len()];
                    black_box(router.choose(policy, &mut state, black_box(request)));
                }
                started.elapsed().as_nanos() as f64 / DECISIONS as f64
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        println!("{:<16} {:>8.0} ns per decision (median of 5)", policy.name(), runs[2]);
    }
}
