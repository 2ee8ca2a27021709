//! The per-query auction for sponsored slots: a pure function of the bids, so its guarantees are checked by
//! property tests. Ads rank by bid × predicted relevance; each shown ad pays, per click, the least it could have
//! bid and kept its slot (the generalized second price), never more than its bid nor than its budget has left;
//! an ad below the relevance floor is never shown, whatever it bids.

use serde::Serialize;

/// One ad's entry into an auction.
#[derive(Debug, Clone, PartialEq)]
pub struct Bid {
    /// The campaign paying.
    pub campaign_id: String,
    /// The product advertised (its catalog row, for the caller to join).
    pub product_row: usize,
    /// The most the campaign pays for a click, in micro-dollars.
    pub bid_micros: i64,
    /// How well the product matches the query, 0 to 1.
    pub relevance: f64,
    /// What the campaign may still spend today, in micro-dollars.
    pub budget_left_micros: i64,
}

/// The auction's rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuctionRules {
    /// Sponsored slots per results page.
    pub slots: usize,
    /// Ads less relevant than this are not shown.
    pub relevance_floor: f64,
    /// The least a click costs, in micro-dollars.
    pub reserve_price_micros: i64,
}

impl Default for AuctionRules {
    fn default() -> Self {
        AuctionRules {
            slots: 2,
            relevance_floor: 0.35,
            reserve_price_micros: 50_000,
        }
    }
}

/// An ad that won a slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// The campaign paying.
    pub campaign_id: String,
    /// The product advertised.
    pub product_row: usize,
    /// The slot, 0 first.
    pub slot: usize,
    /// What a click costs, in micro-dollars.
    pub price_micros: i64,
    /// The ad's predicted relevance.
    pub relevance: f64,
}

/// Runs the auction. An ad enters if it is relevant enough, bids at least the reserve and can afford its own
/// bid; a product advertised by several campaigns enters once, with its best entry. Winners are the highest
/// bid × relevance (ties: higher relevance, then campaign id, so the result is deterministic).
pub fn run_auction(bids: &[Bid], rules: &AuctionRules) -> Vec<Placement> {
    let mut entries: Vec<&Bid> = bids
        .iter()
        .filter(|bid| {
            bid.relevance.is_finite()
                && bid.relevance >= rules.relevance_floor
                && bid.relevance <= 1.0
                && bid.bid_micros >= rules.reserve_price_micros
                && bid.budget_left_micros >= bid.bid_micros
        })
        .collect();
    entries.sort_by(|a, b| {
        score(b)
            .total_cmp(&score(a))
            .then_with(|| b.relevance.total_cmp(&a.relevance))
            .then_with(|| a.campaign_id.cmp(&b.campaign_id))
            .then_with(|| a.product_row.cmp(&b.product_row))
    });
    let mut seen_products = std::collections::HashSet::new();
    entries.retain(|bid| seen_products.insert(bid.product_row));

    (0..rules.slots.min(entries.len()))
        .map(|slot| {
            let winner = entries[slot];
            // The least bid that would still rank above the next ad: its score divided by our relevance.
            let runner_up = entries.get(slot + 1).map_or(0.0, |next| score(next));
            let needed = ((runner_up / winner.relevance).floor() as i64).saturating_add(1);
            let price_micros = needed.max(rules.reserve_price_micros).min(winner.bid_micros);
            Placement {
                campaign_id: winner.campaign_id.clone(),
                product_row: winner.product_row,
                slot,
                price_micros,
                relevance: winner.relevance,
            }
        })
        .collect()
}

fn score(bid: &Bid) -> f64 {
    bid.bid_micros as f64 * bid.relevance
}

/// Whether a campaign takes part in auctions now, so that its budget lasts the day: it sits out while it has
/// spent more than its share of the day so far (plus a little slack, so a fresh day starts spending at once).
pub fn paced_in(spent_micros: i64, daily_budget_micros: i64, fraction_of_day: f64) -> bool {
    const SLACK: f64 = 0.05;
    spent_micros < daily_budget_micros
        && (spent_micros as f64) <= daily_budget_micros as f64 * (fraction_of_day.clamp(0.0, 1.0) + SLACK)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn bid(campaign: &str, row: usize, bid_micros: i64, relevance: f64) -> Bid {
        Bid {
            campaign_id: campaign.to_owned(),
            product_row: row,
            bid_micros,
            relevance,
            budget_left_micros: 10_000_000,
        }
    }

    #[test]
    fn ranks_by_bid_times_relevance_and_charges_the_next_price() {
        let rules = AuctionRules {
            slots: 2,
            relevance_floor: 0.3,
            reserve_price_micros: 10_000,
        };
        let bids = [
            bid("a", 1, 1_000_000, 0.5), // score 500k
            bid("b", 2, 400_000, 0.9),   // score 360k
            bid("c", 3, 2_000_000, 0.2), // below the floor
            bid("d", 4, 300_000, 0.6),   // score 180k
        ];
        let placements = run_auction(&bids, &rules);
        let winners: Vec<(&str, i64)> = placements
            .iter()
            .map(|placement| (placement.campaign_id.as_str(), placement.price_micros))
            .collect();
        // a pays just enough to beat b: 360k / 0.5 = 720k; b just enough to beat d: 180k / 0.9 = 200k.
        assert_eq!(winners, [("a", 720_001), ("b", 200_001)]);
    }

    #[test]
    fn a_lone_ad_pays_the_reserve_and_one_product_shows_once() {
        let rules = AuctionRules::default();
        let placements = run_auction(&[bid("a", 1, 900_000, 0.8), bid("b", 1, 100_000, 0.9)], &rules);
        assert_eq!(placements.len(), 1);
        assert_eq!(placements[0].campaign_id, "a");
        assert_eq!(placements[0].price_micros, rules.reserve_price_micros);
    }

    #[test]
    fn pacing_spreads_the_budget_over_the_day() {
        assert!(paced_in(0, 1_000, 0.0));
        assert!(paced_in(500, 1_000, 0.5));
        assert!(!paced_in(700, 1_000, 0.5));
        assert!(!paced_in(1_000, 1_000, 1.0), "a spent budget never bids");
    }

    fn arbitrary_bids() -> impl Strategy<Value = Vec<Bid>> {
        proptest::collection::vec(
            (0usize..4, 0usize..12, 0i64..3_000_000, 0.0f64..1.0, 0i64..3_000_000).prop_map(
                |(campaign, row, bid_micros, relevance, budget_left_micros)| Bid {
                    campaign_id: format!("c{campaign}"),
                    product_row: row,
                    bid_micros,
                    relevance,
                    budget_left_micros,
                },
            ),
            0..24,
        )
    }

    proptest! {
        #[test]
        fn no_ad_pays_more_than_its_bid_or_its_budget_and_none_below_the_floor_shows(
            bids in arbitrary_bids(),
            slots in 0usize..5,
            floor in 0.0f64..1.0,
            reserve in 0i64..200_000,
        ) {
            let rules = AuctionRules { slots, relevance_floor: floor, reserve_price_micros: reserve };
            let placements = run_auction(&bids, &rules);
            prop_assert!(placements.len() <= slots);
            let mut products = std::collections::HashSet::new();
            for placement in &placements {
                let entry = bids
                    .iter()
                    .filter(|bid| bid.campaign_id == placement.campaign_id && bid.product_row == placement.product_row)
                    .find(|bid| bid.relevance == placement.relevance)
                    .unwrap();
                prop_assert!(entry.relevance >= floor, "below the floor");
                prop_assert!(placement.price_micros <= entry.bid_micros, "pays more than its bid");
                prop_assert!(placement.price_micros <= entry.budget_left_micros, "pays more than its budget has left");
                prop_assert!(placement.price_micros >= reserve, "pays less than the reserve");
                prop_assert!(products.insert(placement.product_row), "a product shown twice");
            }
            for pair in placements.windows(2) {
                let score = |placement: &Placement| {
                    let entry = bids.iter().find(|bid| bid.campaign_id == placement.campaign_id
                        && bid.product_row == placement.product_row && bid.relevance == placement.relevance).unwrap();
                    entry.bid_micros as f64 * entry.relevance
                };
                prop_assert!(score(&pair[0]) >= score(&pair[1]), "slots out of score order");
            }
        }

        #[test]
        fn bidding_more_never_loses_a_slot(bids in arbitrary_bids(), raise in 1i64..1_000_000) {
            let rules = AuctionRules { slots: 2, relevance_floor: 0.0, reserve_price_micros: 0 };
            let before = run_auction(&bids, &rules);
            if let Some(first) = before.first() {
                let mut raised = bids.clone();
                for bid in raised.iter_mut().filter(|bid| bid.campaign_id == first.campaign_id && bid.product_row == first.product_row) {
                    bid.bid_micros += raise;
                    bid.budget_left_micros += raise;
                }
                let after = run_auction(&raised, &rules);
                prop_assert!(after.iter().any(|placement| placement.product_row == first.product_row));
            }
        }
    }
}
