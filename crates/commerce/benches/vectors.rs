//! How exact vector search grows with the catalog: `ProductVectors::nearest` (top 100 of 384-dimensional
//! normalized vectors, as the storefront asks) at the demo catalog's size and at larger ones. Random vectors
//! cost the same as real ones for an exhaustive scan. Prints the median and p99 of each size over many queries.
//! Run: `cargo bench -p commerce --bench vectors` (or `--workspace`).
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use commerce::ProductVectors;

const DIMENSIONS: usize = 384;
const DEPTH: usize = 100;
const QUERIES: usize = 200;

fn random_unit_vectors(count: usize, seed: &mut u64) -> Vec<Vec<f32>> {
    (0..count)
        .map(|_| {
            let vector: Vec<f32> = (0..DIMENSIONS)
                .map(|_| {
                    // xorshift64: reproducible and free of dependencies.
                    *seed ^= *seed << 13;
                    *seed ^= *seed >> 7;
                    *seed ^= *seed << 17;
                    (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect();
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            vector.into_iter().map(|v| v / norm).collect()
        })
        .collect()
}

fn main() {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    let queries = random_unit_vectors(QUERIES, &mut seed);
    println!("| products | p50 ms | p99 ms |");
    println!("|---|---|---|");
    for products in [6_482, 50_000, 200_000] {
        let vectors = ProductVectors::from_rows(random_unit_vectors(products, &mut seed)).unwrap();
        let mut times: Vec<f64> = queries
            .iter()
            .map(|query| {
                let started = Instant::now();
                let nearest = vectors.nearest(query, DEPTH);
                assert_eq!(nearest.len(), DEPTH);
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "| {products} | {:.3} | {:.3} |",
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
}
