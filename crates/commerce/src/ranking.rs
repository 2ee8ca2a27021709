//! Turning candidate lists into one ranking: reciprocal rank fusion of the keyword and vector lists, and the
//! category-intent rerank, which lifts products of the classes the best candidates agree on (a "king bed" query
//! whose top hits are mostly Beds wants beds, not bed sheets).

use std::collections::HashMap;

use crate::vectors::best_first;

/// The rank constant of reciprocal rank fusion: the value from the original RRF paper, used unchanged by most
/// engines; it makes the first few places of each list count about equally.
pub(crate) const RRF_K: f32 = 60.0;
/// How many of the best fused candidates vote on the query's category intent.
const INTENT_VOTERS: usize = 20;

/// Fuses ranked lists of catalog rows: each row scores the sum of 1 / (k + rank) over the lists it is in.
/// Best first, ties by row.
pub(crate) fn reciprocal_rank_fusion(lists: &[&[(usize, f32)]]) -> Vec<(usize, f32)> {
    let mut scores: HashMap<usize, f32> = HashMap::new();
    for list in lists {
        for (rank, &(row, _)) in list.iter().enumerate() {
            *scores.entry(row).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(usize, f32)> = scores.into_iter().collect();
    fused.sort_unstable_by(best_first);
    fused
}

/// Reranks `ranked` (best first) by category intent: the top candidates vote for their classes, weighted by
/// 1 / rank, and each candidate gains its best class's share of the vote times `unit`, the score of a first
/// place in the ranking's own terms, so that a unanimous intent is worth one first place.
pub(crate) fn rerank_by_category_intent<'a>(
    ranked: &mut [(usize, f32)],
    classes_of: impl Fn(usize) -> &'a [String],
    unit: f32,
) {
    let mut votes: HashMap<&str, f32> = HashMap::new();
    // Summed in rank order, not map order, so that equal inputs give bit-equal scores and ties stay put.
    let mut total = 0.0f32;
    for (rank, &(row, _)) in ranked.iter().take(INTENT_VOTERS).enumerate() {
        for class in classes_of(row) {
            let vote = 1.0 / (rank as f32 + 1.0);
            *votes.entry(class.as_str()).or_default() += vote;
            total += vote;
        }
    }
    if total <= 0.0 {
        return;
    }
    for (row, score) in ranked.iter_mut() {
        let share = classes_of(*row)
            .iter()
            .filter_map(|class| votes.get(class.as_str()))
            .fold(0.0f32, |best, &vote| best.max(vote / total));
        *score += share * unit;
    }
    ranked.sort_unstable_by(best_first);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_row_in_both_lists_beats_rows_in_one() {
        let keyword = [(1, 9.0), (2, 5.0), (3, 1.0)];
        let dense = [(4, 0.9), (3, 0.8)];
        let rows: Vec<usize> = reciprocal_rank_fusion(&[&keyword, &dense])
            .into_iter()
            .map(|(row, _)| row)
            .collect();
        assert_eq!(rows[0], 3);
        assert_eq!(rows[1..], [1, 4, 2]);
    }

    #[test]
    fn the_agreed_class_rises() {
        let classes: Vec<Vec<String>> = vec![
            vec!["Beds".into()],
            vec!["Sheets".into()],
            vec!["Beds".into()],
            vec!["Beds".into(), "Kids Beds".into()],
        ];
        let mut ranked = vec![(0, 0.05), (1, 0.049), (2, 0.048), (3, 0.047)];
        rerank_by_category_intent(&mut ranked, |row| &classes[row], 1.0 / 61.0);
        let rows: Vec<usize> = ranked.iter().map(|&(row, _)| row).collect();
        assert_eq!(rows, vec![0, 2, 3, 1]);
    }

    proptest! {
        #[test]
        fn fusion_keeps_every_row_once_best_first(
            a in proptest::collection::vec(0usize..50, 0..30),
            b in proptest::collection::vec(0usize..50, 0..30),
        ) {
            let dedup = |list: Vec<usize>| {
                let mut seen = std::collections::HashSet::new();
                list.into_iter().filter(|row| seen.insert(*row)).map(|row| (row, 0.0)).collect::<Vec<_>>()
            };
            let (a, b) = (dedup(a), dedup(b));
            let fused = reciprocal_rank_fusion(&[&a, &b]);
            let expected: std::collections::HashSet<usize> = a.iter().chain(&b).map(|&(row, _)| row).collect();
            prop_assert_eq!(fused.len(), expected.len());
            prop_assert!(fused.windows(2).all(|pair| pair[0].1 >= pair[1].1));
        }
    }
}
