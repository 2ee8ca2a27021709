//! A discrete-event simulator that replays a request trace through a fleet under one routing policy.
//!
//! Each replica prefills prompts one after another (compute-bound) and decodes up to `max_batch` sequences
//! together, each step taking `decode_step_ms + decode_step_ms_per_sequence x (batch - 1)`; a sequence's step
//! time is fixed when it joins the batch, which keeps the cost at three events per request. Power per chip is
//! the prefill figure while prompts are queued, the decode figure while sequences decode, idle otherwise,
//! times the site's PUE; energy is priced and its carbon counted at each hour's price and grid intensity.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use serde::Serialize;

use crate::FleetError;
use crate::router::{FleetState, Policy, RouteRequest, Router};
use crate::spec::Fleet;
use crate::trace::Trace;

/// How to replay a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationOptions {
    /// The routing policy.
    pub policy: Policy,
    /// Days to simulate: the trace repeats back to back until they are covered.
    pub days: f64,
    /// Copies of the trace replayed together, each shifted by an equal part of the trace's span, to reach a
    /// fleet-sized load from a sampled trace.
    pub load_scale: u32,
    /// When the simulation starts (Unix seconds); the trace's own date when `None`, else the start of the
    /// fleet's series.
    pub start_unix_s: Option<f64>,
    /// Index of the model the trace's requests ask for.
    pub model: usize,
}

/// One site's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteReport {
    /// Its name.
    pub site: String,
    /// Requests it served.
    pub requests: u64,
    /// Energy, facility overhead included, kWh.
    pub energy_kwh: f64,
    /// Energy cost, USD.
    pub energy_cost_usd: f64,
    /// Carbon, kg CO2e.
    pub carbon_kg: f64,
    /// Highest draw seen, MW.
    pub peak_mw: f64,
    /// Its power cap, MW.
    pub power_cap_mw: f64,
    /// Average draw in each simulated hour, MW.
    pub hourly_mw: Vec<f64>,
}

/// What one policy did over the whole replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationReport {
    /// The policy's name.
    pub policy: String,
    /// Requests replayed.
    pub requests: u64,
    /// Prompt plus output tokens served.
    pub tokens: u64,
    /// Simulated hours.
    pub hours: f64,
    /// Energy, facility overhead included, kWh.
    pub energy_kwh: f64,
    /// Energy cost, USD.
    pub energy_cost_usd: f64,
    /// Carbon, kg CO2e.
    pub carbon_kg: f64,
    /// Chips' hourly cost (rent or depreciation) over the simulated hours, USD.
    pub hardware_cost_usd: f64,
    /// Energy plus hardware cost per million tokens, USD.
    pub cost_per_mtok_usd: f64,
    /// Median time to first token, network included, ms.
    pub p50_ttft_ms: f64,
    /// 99th percentile time to first token, ms.
    pub p99_ttft_ms: f64,
    /// Median time per output token, ms.
    pub p50_tpot_ms: f64,
    /// 99th percentile time per output token, ms.
    pub p99_tpot_ms: f64,
    /// Share of requests that met both their TTFT and TPOT targets.
    pub slo_attainment: f64,
    /// Times a site's draw went above its power cap.
    pub cap_violations: u64,
    /// Seconds sites spent above their caps, summed over sites.
    pub seconds_over_cap: f64,
    /// Wall-clock seconds the replay took.
    pub wall_s: f64,
    /// Simulated requests per second of wall time.
    pub requests_per_wall_s: f64,
    /// Per site.
    pub sites: Vec<SiteReport>,
}

#[derive(Clone, Copy)]
struct Pending {
    arrival_s: f64,
    prefill_done_s: f64,
    output_tokens: u32,
    rtt_ms: f32,
    slo: u16,
}

#[derive(Clone, Copy, PartialEq)]
struct Event {
    time_s: f64,
    replica: u32,
    kind: EventKind,
}

#[derive(Clone, Copy, PartialEq)]
enum EventKind {
    PrefillDone(PendingIndex),
    DecodeDone,
}

/// Pending requests live in a slab so events stay small.
type PendingIndex = u32;

impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.time_s
            .total_cmp(&other.time_s)
            .then(self.replica.cmp(&other.replica))
    }
}

struct ReplicaSim {
    power_per_chip_w: f64,
    last_account_s: f64,
    waiting: VecDeque<PendingIndex>,
}

/// Deterministic uniform numbers in [0, 1) from a request's index (SplitMix64), so every policy sees the
/// same users in the same regions.
fn unit_hash(index: u64, salt: u64) -> f64 {
    let mut z = index.wrapping_add(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn pick(cumulative: &[f64], u: f64) -> usize {
    cumulative
        .iter()
        .position(|&edge| u < edge)
        .unwrap_or(cumulative.len().saturating_sub(1))
}

fn cumulative(shares: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut total = 0.0;
    shares
        .map(|share| {
            total += share;
            total
        })
        .collect()
}

fn percentile(values: &mut [f32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    let (_, value, _) = values.select_nth_unstable_by(index, f32::total_cmp);
    *value as f64
}

/// The arrival times (seconds after the start) and trace indices of every replayed request, in order.
fn arrivals(trace: &Trace, horizon_s: f64, copies: u32) -> Vec<(f64, u32)> {
    let span = trace.span_s();
    // A trace whose requests all arrive at once repeats every second (a zero period would never advance).
    let period = if trace.requests.len() > 1 && span > 0.0 {
        span + span / (trace.requests.len() - 1) as f64
    } else {
        1.0
    };
    let copies = copies.max(1);
    let mut out = Vec::with_capacity((horizon_s / period).ceil() as usize * trace.requests.len() * copies as usize);
    let mut chunk = Vec::with_capacity(trace.requests.len() * copies as usize);
    let mut repeat = 0u64;
    loop {
        let base = repeat as f64 * period;
        if base >= horizon_s {
            break;
        }
        chunk.clear();
        for copy in 0..copies {
            let shift = copy as f64 * period / copies as f64;
            for (index, request) in trace.requests.iter().enumerate() {
                let t = base + (request.arrival_s + shift) % period;
                if t < horizon_s {
                    chunk.push((t, index as u32));
                }
            }
        }
        if copies > 1 {
            chunk.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        out.extend_from_slice(&chunk);
        repeat += 1;
    }
    out
}

/// Replays `trace` through `fleet` under `options.policy`.
pub fn simulate(fleet: &Fleet, trace: &Trace, options: &SimulationOptions) -> Result<SimulationReport, FleetError> {
    let started = Instant::now();
    if options.model >= fleet.models.len() {
        return Err(FleetError::Unknown(
            "the simulated model is not in the fleet".to_owned(),
        ));
    }
    if !(options.days.is_finite() && options.days > 0.0) {
        return Err(FleetError::Unknown("days must be above 0".to_owned()));
    }
    let horizon_s = options.days * 86_400.0;
    let start_s = options
        .start_unix_s
        .or(trace.start_unix_s)
        .or_else(|| {
            fleet
                .sites
                .iter()
                .find(|site| !site.price.is_constant())
                .map(|site| site.price.hours().0 as f64 * 3600.0)
        })
        .unwrap_or(0.0);
    let (first_hour, last_hour) = (
        (start_s / 3600.0).floor() as i64,
        ((start_s + horizon_s) / 3600.0).ceil() as i64,
    );
    for site in &fleet.sites {
        for (what, series) in [("price", &site.price), ("carbon", &site.carbon)] {
            if !series.covers(first_hour, last_hour) {
                let (from, to) = series.hours();
                return Err(FleetError::Unknown(format!(
                    "the {what} series of site '{}' covers {} to {}, but the simulation runs from {} to {}; pass --start or fewer --days",
                    site.name,
                    hour_text(from),
                    hour_text(to),
                    hour_text(first_hour),
                    hour_text(last_hour)
                )));
            }
        }
    }
    if !fleet.replicas.iter().any(|replica| replica.model == options.model) {
        return Err(FleetError::Unknown(format!(
            "no replica serves the model '{}'",
            fleet.models[options.model].name
        )));
    }

    let router = Router::new(std::sync::Arc::new(fleet.clone()));
    let state = FleetState::idle(fleet, start_s);
    let hours = (last_hour - first_hour) as usize;
    let over_since: Vec<Option<f64>> = fleet
        .sites
        .iter()
        .enumerate()
        .map(|(index, site)| (state.site_power_w[index] > site.power_cap_w).then_some(start_s))
        .collect();
    let schedule = arrivals(trace, horizon_s, options.load_scale);
    let mut replay = Replay {
        fleet,
        cap_violations: over_since.iter().filter(|over| over.is_some()).count() as u64,
        over_since,
        site_peak_w: state.site_power_w.clone(),
        state,
        replicas: fleet
            .replicas
            .iter()
            .map(|replica| ReplicaSim {
                power_per_chip_w: replica.idle_w,
                last_account_s: start_s,
                waiting: VecDeque::new(),
            })
            .collect(),
        site_energy_wh: vec![0.0; fleet.sites.len()],
        site_cost_usd: vec![0.0; fleet.sites.len()],
        site_carbon_g: vec![0.0; fleet.sites.len()],
        site_hour_wh: vec![vec![0.0; hours.max(1)]; fleet.sites.len()],
        first_hour_s: first_hour as f64 * 3600.0,
        seconds_over_cap: 0.0,
        pending: Vec::new(),
        free_slots: Vec::new(),
        events: BinaryHeap::new(),
        ttft: Vec::with_capacity(schedule.len()),
        tpot: Vec::with_capacity(schedule.len()),
        slo_met: 0,
    };
    let region_edges = cumulative(fleet.user_regions.iter().map(|region| region.share));
    let slo_edges = cumulative(fleet.slo_mix.iter().copied());
    let mut tokens = 0u64;
    let mut site_requests = vec![0u64; fleet.sites.len()];
    let mut current_hour = first_hour;

    for (sequence, &(offset_s, trace_index)) in schedule.iter().enumerate() {
        let now = start_s + offset_s;
        replay.run_until(now);
        replay.state.now_s = now;
        let hour = (now / 3600.0).floor() as i64;
        if hour != current_hour {
            current_hour = hour;
            replay.state.set_hour(fleet, now);
        }
        let request = trace.requests[trace_index as usize];
        let route = RouteRequest {
            model: options.model,
            prompt_tokens: request.prompt_tokens,
            output_tokens: request.output_tokens,
            region: pick(&region_edges, unit_hash(sequence as u64, 0x5EED)),
            slo: pick(&slo_edges, unit_hash(sequence as u64, 0x0510)),
        };
        let Some(choice) = router.choose(options.policy, &mut replay.state, &route) else {
            continue;
        };
        let site = fleet.replicas[choice.replica].site;
        replay.admit(choice.replica, now, &route);
        site_requests[site] += 1;
        tokens += request.prompt_tokens as u64 + request.output_tokens as u64;
    }
    replay.run_until(f64::INFINITY);
    let end_s = replay
        .replicas
        .iter()
        .map(|replica| replica.last_account_s)
        .fold(start_s + horizon_s, f64::max);
    for replica in 0..fleet.replicas.len() {
        replay.settle(replica, end_s);
    }
    for since in replay.over_since.iter().flatten() {
        replay.seconds_over_cap += end_s - since;
    }

    let simulated_hours = (end_s - start_s) / 3600.0;
    let hardware_cost_usd: f64 = fleet
        .replicas
        .iter()
        .map(|replica| {
            fleet
                .accelerators
                .get(replica.accelerator)
                .map(|chip| chip.hourly_cost_usd())
                .unwrap_or(0.0)
                * replica.accelerators as f64
                * simulated_hours
        })
        .sum();
    let energy_cost_usd: f64 = replay.site_cost_usd.iter().sum();
    let requests = replay.ttft.len() as u64;
    let wall_s = started.elapsed().as_secs_f64();
    Ok(SimulationReport {
        policy: options.policy.name().to_owned(),
        requests,
        tokens,
        hours: simulated_hours,
        energy_kwh: replay.site_energy_wh.iter().sum::<f64>() / 1e3,
        energy_cost_usd,
        carbon_kg: replay.site_carbon_g.iter().sum::<f64>() / 1e3,
        hardware_cost_usd,
        cost_per_mtok_usd: if tokens == 0 {
            0.0
        } else {
            (energy_cost_usd + hardware_cost_usd) / (tokens as f64 / 1e6)
        },
        p50_ttft_ms: percentile(&mut replay.ttft, 0.50),
        p99_ttft_ms: percentile(&mut replay.ttft, 0.99),
        p50_tpot_ms: percentile(&mut replay.tpot, 0.50),
        p99_tpot_ms: percentile(&mut replay.tpot, 0.99),
        slo_attainment: if requests == 0 {
            1.0
        } else {
            replay.slo_met as f64 / requests as f64
        },
        cap_violations: replay.cap_violations,
        seconds_over_cap: replay.seconds_over_cap,
        wall_s,
        requests_per_wall_s: if wall_s > 0.0 { requests as f64 / wall_s } else { 0.0 },
        sites: fleet
            .sites
            .iter()
            .enumerate()
            .map(|(index, site)| SiteReport {
                site: site.name.clone(),
                requests: site_requests[index],
                energy_kwh: replay.site_energy_wh[index] / 1e3,
                energy_cost_usd: replay.site_cost_usd[index],
                carbon_kg: replay.site_carbon_g[index] / 1e3,
                peak_mw: replay.site_peak_w[index] / 1e6,
                power_cap_mw: site.power_cap_w / 1e6,
                hourly_mw: replay.site_hour_wh[index].iter().map(|wh| wh / 1e6).collect(),
            })
            .collect(),
    })
}

/// The replay's mutable world: replica states, the event queue, energy accounts and latency samples.
struct Replay<'f> {
    fleet: &'f Fleet,
    state: FleetState,
    replicas: Vec<ReplicaSim>,
    site_energy_wh: Vec<f64>,
    site_cost_usd: Vec<f64>,
    site_carbon_g: Vec<f64>,
    site_hour_wh: Vec<Vec<f64>>,
    first_hour_s: f64,
    site_peak_w: Vec<f64>,
    over_since: Vec<Option<f64>>,
    cap_violations: u64,
    seconds_over_cap: f64,
    pending: Vec<Pending>,
    free_slots: Vec<PendingIndex>,
    events: BinaryHeap<Reverse<Event>>,
    ttft: Vec<f32>,
    tpot: Vec<f32>,
    slo_met: u64,
}

impl Replay<'_> {
    /// Queues a routed request's prompt on `replica`.
    fn admit(&mut self, replica: usize, now: f64, route: &RouteRequest) {
        let spec = &self.fleet.replicas[replica];
        self.settle(replica, now);
        let load = &mut self.state.loads[replica];
        let done = load.prefill_free_at_s.max(now) + route.prompt_tokens as f64 / spec.profile.prefill_tokens_per_s;
        load.prefill_free_at_s = done;
        let item = Pending {
            arrival_s: now,
            prefill_done_s: done,
            output_tokens: route.output_tokens,
            rtt_ms: self.fleet.latency_ms[route.region][spec.site] as f32,
            slo: route.slo as u16,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.pending[slot as usize] = item;
                slot
            }
            None => {
                self.pending.push(item);
                (self.pending.len() - 1) as PendingIndex
            }
        };
        self.events.push(Reverse(Event {
            time_s: done,
            replica: replica as u32,
            kind: EventKind::PrefillDone(slot),
        }));
        self.settle(replica, now);
    }

    /// Handles every event up to `until`.
    fn run_until(&mut self, until: f64) {
        while let Some(Reverse(event)) = self.events.peek().copied() {
            if event.time_s > until {
                break;
            }
            self.events.pop();
            let replica = event.replica as usize;
            self.state.now_s = event.time_s;
            let max_batch = self.fleet.replicas[replica].profile.max_batch;
            match event.kind {
                EventKind::PrefillDone(slot) => {
                    if self.state.loads[replica].decoding < max_batch {
                        self.start_decode(replica, slot, event.time_s);
                    } else {
                        self.state.loads[replica].waiting += 1;
                        self.replicas[replica].waiting.push_back(slot);
                    }
                }
                EventKind::DecodeDone => {
                    let load = &mut self.state.loads[replica];
                    load.decoding = load.decoding.saturating_sub(1);
                    if let Some(slot) = self.replicas[replica].waiting.pop_front() {
                        self.state.loads[replica].waiting -= 1;
                        self.start_decode(replica, slot, event.time_s);
                    }
                }
            }
            self.settle(replica, event.time_s);
        }
    }

    /// Joins a prefilled request to the replica's batch and records its latencies; its first token came at
    /// prefill, so any wait for a batch slot shows in its TPOT.
    fn start_decode(&mut self, replica: usize, slot: PendingIndex, now: f64) {
        let profile = &self.fleet.replicas[replica].profile;
        let load = &mut self.state.loads[replica];
        load.decoding += 1;
        let item = self.pending[slot as usize];
        let done = now + profile.step_s(load.decoding) * item.output_tokens.saturating_sub(1) as f64;
        self.free_slots.push(slot);
        self.events.push(Reverse(Event {
            time_s: done,
            replica: replica as u32,
            kind: EventKind::DecodeDone,
        }));
        let first_token_ms = (item.prefill_done_s - item.arrival_s) * 1e3 + item.rtt_ms as f64;
        let per_token_ms = if item.output_tokens > 1 {
            (done - item.prefill_done_s) * 1e3 / (item.output_tokens - 1) as f64
        } else {
            0.0
        };
        self.ttft.push(first_token_ms as f32);
        self.tpot.push(per_token_ms as f32);
        let slo = self.fleet.slo_classes[item.slo as usize].1;
        if first_token_ms <= slo.ttft_ms && per_token_ms <= slo.tpot_ms {
            self.slo_met += 1;
        }
    }

    /// Brings a replica's energy up to `now` at its current draw, then sets its draw from its state.
    fn settle(&mut self, replica: usize, now: f64) {
        let spec = &self.fleet.replicas[replica];
        let site = &self.fleet.sites[spec.site];
        let sim = &mut self.replicas[replica];
        let chips_pue = spec.accelerators as f64 * site.pue;
        let watts = sim.power_per_chip_w * chips_pue;
        let mut from = sim.last_account_s;
        while from < now {
            let hour = (from / 3600.0).floor();
            let until = now.min((hour + 1.0) * 3600.0);
            let wh = watts * (until - from) / 3600.0;
            self.site_energy_wh[spec.site] += wh;
            self.site_cost_usd[spec.site] += wh * site.price.at_hour(hour as i64) / 1e6;
            self.site_carbon_g[spec.site] += wh * site.carbon.at_hour(hour as i64) / 1e3;
            let slot = ((hour * 3600.0 - self.first_hour_s) / 3600.0) as usize;
            if let Some(bucket) = self.site_hour_wh[spec.site].get_mut(slot) {
                *bucket += wh;
            }
            from = until;
        }
        sim.last_account_s = now;
        let load = &self.state.loads[replica];
        let per_chip = if load.prefill_free_at_s > now {
            spec.prefill_w
        } else if load.decoding > 0 {
            spec.decode_w
        } else {
            spec.idle_w
        };
        if per_chip == sim.power_per_chip_w {
            return;
        }
        let power = &mut self.state.site_power_w[spec.site];
        *power += (per_chip - sim.power_per_chip_w) * chips_pue;
        sim.power_per_chip_w = per_chip;
        self.site_peak_w[spec.site] = self.site_peak_w[spec.site].max(*power);
        let over = *power > site.power_cap_w * (1.0 + 1e-9);
        match (over, self.over_since[spec.site]) {
            (true, None) => {
                self.cap_violations += 1;
                self.over_since[spec.site] = Some(now);
            }
            (false, Some(since)) => {
                self.seconds_over_cap += now - since;
                self.over_since[spec.site] = None;
            }
            _ => {}
        }
    }
}

fn hour_text(hour: i64) -> String {
    jiff::Timestamp::from_second(hour * 3600)
        .map(|timestamp| timestamp.strftime("%Y-%m-%d %H:00").to_string())
        .unwrap_or_else(|_| hour.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::trace::TraceRequest;

    const FLEET: &str = r#"
[[models]]
name = "m"
class = "70b"

[[sites]]
name = "near-dirty"
region = "r1"
lat = 40.0
lon = -74.0
power_cap_mw = 1.0
pue = 1.2
price = { constant = 100 }
carbon = { constant = 500 }
replicas = [{ model = "m", accelerator = "h100", count = 4 }]

[[sites]]
name = "far-clean"
region = "r2"
lat = 43.6
lon = -79.4
power_cap_mw = 0.004
pue = 1.1
price = { constant = 20 }
carbon = { constant = 40 }
replicas = [{ model = "m", accelerator = "h100", count = 4 }]

[[user_regions]]
name = "users"
lat = 40.0
lon = -74.0
share = 1.0
"#;

    fn trace(rate_per_s: f64, count: usize) -> Trace {
        Trace {
            start_unix_s: Some(0.0),
            requests: (0..count)
                .map(|index| TraceRequest {
                    arrival_s: index as f64 / rate_per_s,
                    prompt_tokens: 1000,
                    output_tokens: 100,
                })
                .collect(),
        }
    }

    fn run(policy: Policy, trace: &Trace) -> SimulationReport {
        let fleet = Fleet::parse(Path::new("f.toml"), FLEET).unwrap();
        let options = SimulationOptions {
            policy,
            days: 0.05,
            load_scale: 1,
            start_unix_s: None,
            model: 0,
        };
        simulate(&fleet, trace, &options).unwrap()
    }

    #[test]
    fn every_request_is_served_once_and_energy_covers_idle_power() {
        let trace = trace(2.0, 3600);
        let report = run(Policy::RoundRobin, &trace);
        assert_eq!(report.requests, 8640, "0.05 days of a 2/s trace");
        // 8 replicas x 2 chips x 75 W idle x PUE for 1.2 h is the floor.
        assert!(report.energy_kwh > 8.0 * 2.0 * 75.0 * 1.1 * 1.2 / 1e3);
        assert!(
            report.p50_ttft_ms > 150.0,
            "a 1000-token prompt takes ~156 ms to prefill"
        );
        assert!(report.sites.iter().map(|site| site.requests).sum::<u64>() == report.requests);
    }

    #[test]
    fn multi_objective_prefers_the_clean_site_within_its_cap_and_the_slo() {
        let trace = trace(4.0, 3600);
        let nearest = run(Policy::Nearest, &trace);
        let multi = run(Policy::MultiObjective, &trace);
        assert_eq!(nearest.sites[1].requests, 0, "latency-only keeps everything near");
        assert!(
            multi.sites[1].requests > multi.requests / 2,
            "{} of {}",
            multi.sites[1].requests,
            multi.requests
        );
        assert!(multi.carbon_kg < nearest.carbon_kg * 0.6);
        assert!(multi.energy_cost_usd < nearest.energy_cost_usd * 0.7);
        assert!(multi.slo_attainment >= 0.99, "{}", multi.slo_attainment);
        assert_eq!(multi.cap_violations, 0);
        let carbon_only = run(Policy::LowestCarbon, &trace);
        assert!(carbon_only.cap_violations > 0, "ignoring the cap breaks it");
    }

    #[test]
    fn series_that_do_not_cover_the_run_are_refused() {
        let text = FLEET.replace("price = { constant = 20 }", "price = { file = \"p.csv\" }");
        let directory = std::env::temp_dir().join(format!("fleet-sim-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(
            directory.join("p.csv"),
            "Datetime (UTC),Price (USD/MWh)\n2023-01-01 00:00:00,5\n",
        )
        .unwrap();
        std::fs::write(directory.join("f.toml"), text).unwrap();
        let fleet = Fleet::read(&directory.join("f.toml")).unwrap();
        let options = SimulationOptions {
            policy: Policy::Nearest,
            days: 1.0,
            load_scale: 1,
            start_unix_s: None,
            model: 0,
        };
        let error = simulate(&fleet, &trace(1.0, 10), &options).unwrap_err().to_string();
        assert!(
            error.contains("the price series of site 'far-clean' covers 2023-01-01 00:00"),
            "{error}"
        );
    }
}
