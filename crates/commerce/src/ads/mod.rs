//! Sponsored products: campaigns with daily budgets that advertise catalog products on keyword and category
//! targets with bids, a per-query auction (`auction.rs`), and the events that make the money: impressions
//! when an ad is served, clicks that are charged the auction's price within the day's budget, and orders
//! attributed to the last click on the product within [`ATTRIBUTION_WINDOW_MS`]. Reports per campaign come
//! from those events.
//!
//! Budgets hold in the database, not just in memory: a click is charged by one conditional upsert of the day's
//! spend that refuses to pass the budget, so concurrent clicks (or instances) can never overspend; a click the
//! budget cannot pay is recorded and free.

mod api;
pub mod auction;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use store::{Database, Migration};

pub use api::admin_routes;
pub(crate) use api::public_routes;
use auction::{AuctionRules, Bid, Placement, paced_in, run_auction};

use crate::{CommerceError, Product, Storefront, unix_millis as now_ms};

/// How long after a click an order of the product still counts as the ad's sale.
pub const ATTRIBUTION_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// The time range a report covers when none is asked for: the last 30 days.
const REPORT_WINDOW_MS: i64 = 30 * DAY_MS;

const SCHEMA: &str = "CREATE TABLE ads_campaigns (
        id TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE ads_spend (
        campaign_id TEXT NOT NULL,
        day BIGINT NOT NULL,
        spent_micros BIGINT NOT NULL,
        PRIMARY KEY (campaign_id, day)
    );
    CREATE TABLE ads_impressions (
        id TEXT PRIMARY KEY,
        campaign_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        query TEXT NOT NULL,
        slot BIGINT NOT NULL,
        price_micros BIGINT NOT NULL,
        shown_at BIGINT NOT NULL,
        clicked_at BIGINT,
        charged_micros BIGINT
    );
    CREATE INDEX ads_impressions_product ON ads_impressions (product_id, clicked_at);
    CREATE TABLE ads_orders (
        id TEXT PRIMARY KEY,
        product_id TEXT NOT NULL,
        amount_micros BIGINT NOT NULL,
        ordered_at BIGINT NOT NULL,
        impression_id TEXT,
        campaign_id TEXT
    );";

const MIGRATIONS: &[Migration] = &[Migration::portable(
    1,
    "sponsored product campaigns, spend, impressions and orders",
    SCHEMA,
)];

/// Keyword and category targets per campaign, and products: enough for any real campaign, bounded so one
/// campaign cannot make every search slow.
const MAX_TARGETS: usize = 200;
const MAX_PRODUCTS: usize = 1_000;

/// A bid as people write it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDraft {
    /// The keyword or category.
    pub value: String,
    /// The most a click is worth, in dollars.
    pub bid_usd: f64,
}

/// A campaign as an advertiser describes it, before it is checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignDraft {
    /// Who pays.
    pub advertiser: String,
    /// A name for people.
    pub name: String,
    /// The most it spends per UTC day, in dollars.
    pub daily_budget_usd: f64,
    /// The catalog products it advertises.
    pub products: Vec<String>,
    /// Keyword targets.
    #[serde(default)]
    pub keywords: Vec<TargetDraft>,
    /// Category targets.
    #[serde(default)]
    pub categories: Vec<TargetDraft>,
}

/// Dollars as micro-dollars, refusing what no budget or bid can be.
pub(crate) fn micros(usd: f64, what: &str) -> Result<i64, CommerceError> {
    if !usd.is_finite() || usd <= 0.0 || usd > 1e9 {
        return Err(CommerceError::InvalidRequest(format!(
            "{what} must be a positive number of dollars, got {usd}"
        )));
    }
    Ok((usd * 1e6).round() as i64)
}

/// Whether a campaign is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    /// Its ads enter auctions.
    Active,
    /// Its ads are held back.
    Paused,
}

/// A keyword or category the campaign bids on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// For keywords, the words a query must all contain (after stemming); for categories, a category or class
    /// name the query's best results must be in.
    pub value: String,
    /// The most a click is worth, in micro-dollars.
    pub bid_micros: i64,
}

/// A sponsored products campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// The campaign id.
    pub id: String,
    /// Who pays.
    pub advertiser: String,
    /// A name for people.
    pub name: String,
    /// Serving or not.
    pub status: CampaignStatus,
    /// The most it spends per UTC day, in micro-dollars.
    pub daily_budget_micros: i64,
    /// The catalog products it advertises.
    pub products: Vec<String>,
    /// Keyword targets.
    pub keywords: Vec<Target>,
    /// Category targets.
    pub categories: Vec<Target>,
}

/// A sponsored hit shown with a results page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SponsoredHit {
    /// The product advertised.
    #[serde(flatten)]
    pub product: Product,
    /// Shown to the shopper beside the product.
    pub label: &'static str,
    /// The campaign paying.
    pub campaign_id: String,
    /// What a click on it reports, to `POST /api/ads/clicks`.
    pub impression_id: String,
    /// The sponsored slot, 0 first.
    pub slot: usize,
}

/// The ads of a store: its campaigns (kept in memory, written through to the database) and the day's spend.
pub struct Ads {
    db: Database,
    campaigns: RwLock<Arc<Vec<Campaign>>>,
    /// Today's spend per campaign as last charged, for the auction's budget check and pacing; the database
    /// holds the truth the charge is checked against.
    spend_today: Mutex<(i64, HashMap<String, i64>)>,
    rules: AuctionRules,
}

impl Ads {
    /// Opens the ads tables in `db`, creating them on first use, and loads the campaigns.
    pub async fn open(db: Database, rules: AuctionRules) -> Result<Ads, CommerceError> {
        db.migrate("ads", MIGRATIONS).await?;
        let ads = Ads {
            db,
            campaigns: RwLock::new(Arc::new(Vec::new())),
            spend_today: Mutex::new((0, HashMap::new())),
            rules,
        };
        ads.reload().await?;
        Ok(ads)
    }

    async fn reload(&self) -> Result<(), CommerceError> {
        let documents: Vec<(String,)> = sqlx::query_as("SELECT document FROM ads_campaigns ORDER BY created_at, id")
            .fetch_all(self.db.pool())
            .await?;
        let mut campaigns = Vec::with_capacity(documents.len());
        for (document,) in documents {
            match serde_json::from_str::<Campaign>(&document) {
                Ok(campaign) => campaigns.push(campaign),
                Err(error) => tracing::error!(%error, "a stored campaign cannot be read; it is left out"),
            }
        }
        let day = now_ms() / DAY_MS;
        let spent: Vec<(String, i64)> =
            sqlx::query_as("SELECT campaign_id, spent_micros FROM ads_spend WHERE day = $1")
                .bind(day)
                .fetch_all(self.db.pool())
                .await?;
        *self.spend_today.lock().unwrap_or_else(PoisonError::into_inner) = (day, spent.into_iter().collect());
        *self.campaigns.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(campaigns);
        Ok(())
    }

    /// Every campaign, oldest first.
    pub fn campaigns(&self) -> Arc<Vec<Campaign>> {
        Arc::clone(&self.campaigns.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Stores `campaign` (new or replacing the one with its id) and serves it from now on.
    pub async fn save_campaign(&self, campaign: &Campaign) -> Result<(), CommerceError> {
        let document = serde_json::to_string(campaign).map_err(|error| CommerceError::Database(error.to_string()))?;
        sqlx::query(
            "INSERT INTO ads_campaigns (id, document, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET document = excluded.document",
        )
        .bind(&campaign.id)
        .bind(document)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        self.reload().await
    }

    /// Checks a draft (names, budget, bids, products the catalog of `storefront` has, at least one target),
    /// then stores it as an active campaign.
    pub async fn create_campaign(
        &self,
        draft: CampaignDraft,
        storefront: &Storefront,
    ) -> Result<Campaign, CommerceError> {
        for (text, what) in [(&draft.advertiser, "advertiser"), (&draft.name, "name")] {
            if text.trim().is_empty() {
                return Err(CommerceError::InvalidRequest(format!(
                    "the campaign's {what} must not be empty"
                )));
            }
        }
        if draft.products.is_empty() || draft.products.len() > MAX_PRODUCTS {
            return Err(CommerceError::InvalidRequest(format!(
                "a campaign advertises 1 to {MAX_PRODUCTS} products, got {}",
                draft.products.len()
            )));
        }
        for id in &draft.products {
            storefront.product(id).map_err(|error| match error {
                CommerceError::ProductNotFound(id) => {
                    CommerceError::InvalidRequest(format!("the catalog has no product '{id}' to advertise"))
                }
                other => other,
            })?;
        }
        if draft.keywords.is_empty() && draft.categories.is_empty() {
            return Err(CommerceError::InvalidRequest(
                "a campaign needs at least one keyword or category target".to_owned(),
            ));
        }
        let targets = |drafts: Vec<TargetDraft>, kind: &str| -> Result<Vec<Target>, CommerceError> {
            if drafts.len() > MAX_TARGETS {
                return Err(CommerceError::InvalidRequest(format!(
                    "at most {MAX_TARGETS} {kind} targets, got {}",
                    drafts.len()
                )));
            }
            drafts
                .into_iter()
                .map(|target| {
                    if target.value.trim().is_empty() {
                        return Err(CommerceError::InvalidRequest(format!("a {kind} target is empty")));
                    }
                    Ok(Target {
                        value: target.value.trim().to_owned(),
                        bid_micros: micros(target.bid_usd, &format!("the bid on '{}'", target.value))?,
                    })
                })
                .collect()
        };
        let campaign = Campaign {
            id: format!("cmp_{}", uuid::Uuid::new_v4().simple()),
            advertiser: draft.advertiser.trim().to_owned(),
            name: draft.name.trim().to_owned(),
            status: CampaignStatus::Active,
            daily_budget_micros: micros(draft.daily_budget_usd, "daily_budget_usd")?,
            products: draft.products,
            keywords: targets(draft.keywords, "keyword")?,
            categories: targets(draft.categories, "category")?,
        };
        self.save_campaign(&campaign).await?;
        Ok(campaign)
    }

    /// What the campaign has spent today, in micro-dollars.
    pub fn spent_today(&self, campaign_id: &str) -> i64 {
        let mut spend = self.spend_today.lock().unwrap_or_else(PoisonError::into_inner);
        let day = now_ms() / DAY_MS;
        if spend.0 != day {
            *spend = (day, HashMap::new());
        }
        spend.1.get(campaign_id).copied().unwrap_or(0)
    }

    /// The ads that match a query: each active, paced-in campaign's products under its best matching target,
    /// as bids. `query_terms` are the query's analyzed words, `target_terms` analyzes a keyword the same way,
    /// `in_category` says whether the query's best results are in a category, `row_of` finds a product and
    /// `relevance` scores it for the query.
    pub(crate) fn bids(
        &self,
        query_terms: &[String],
        target_terms: impl Fn(&str) -> Vec<String>,
        in_category: impl Fn(&str) -> bool,
        row_of: impl Fn(&str) -> Option<usize>,
        relevance: impl Fn(usize) -> f64,
    ) -> Vec<Bid> {
        let fraction_of_day = (now_ms() % DAY_MS) as f64 / DAY_MS as f64;
        let mut bids = Vec::new();
        for campaign in self
            .campaigns()
            .iter()
            .filter(|campaign| campaign.status == CampaignStatus::Active)
        {
            let spent = self.spent_today(&campaign.id);
            if !paced_in(spent, campaign.daily_budget_micros, fraction_of_day) {
                continue;
            }
            let keyword_bid = campaign
                .keywords
                .iter()
                .filter(|target| {
                    let terms = target_terms(&target.value);
                    !terms.is_empty() && terms.iter().all(|term| query_terms.contains(term))
                })
                .map(|target| target.bid_micros);
            let category_bid = campaign
                .categories
                .iter()
                .filter(|target| in_category(&target.value))
                .map(|target| target.bid_micros);
            let Some(bid_micros) = keyword_bid.chain(category_bid).max() else {
                continue;
            };
            for row in campaign.products.iter().filter_map(|id| row_of(id)) {
                bids.push(Bid {
                    campaign_id: campaign.id.clone(),
                    product_row: row,
                    bid_micros,
                    relevance: relevance(row),
                    budget_left_micros: campaign.daily_budget_micros - spent,
                });
            }
        }
        bids
    }

    /// Runs the auction over `bids` and records an impression per winner (in the background: serving the page
    /// does not wait for the write).
    pub(crate) fn serve(
        &self,
        bids: &[Bid],
        query: &str,
        product_id: impl Fn(usize) -> String,
    ) -> Vec<(Placement, String)> {
        let placements = run_auction(bids, &self.rules);
        let shown_at = now_ms();
        let served: Vec<(Placement, String, String)> = placements
            .into_iter()
            .map(|placement| {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let product = product_id(placement.product_row);
                (placement, id, product)
            })
            .collect();
        if !served.is_empty() {
            let db = self.db.clone();
            let rows: Vec<(String, String, String, i64, i64)> = served
                .iter()
                .map(|(placement, id, product)| {
                    (
                        id.clone(),
                        placement.campaign_id.clone(),
                        product.clone(),
                        placement.slot as i64,
                        placement.price_micros,
                    )
                })
                .collect();
            let query = query.to_owned();
            tokio::spawn(async move {
                for (id, campaign_id, product_id, slot, price_micros) in rows {
                    let written = sqlx::query(
                        "INSERT INTO ads_impressions (id, campaign_id, product_id, query, slot, price_micros, shown_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(id)
                    .bind(campaign_id)
                    .bind(product_id)
                    .bind(&query)
                    .bind(slot)
                    .bind(price_micros)
                    .bind(shown_at)
                    .execute(db.pool())
                    .await;
                    if let Err(error) = written {
                        tracing::error!(%error, "could not record an ad impression");
                    }
                }
            });
        }
        served.into_iter().map(|(placement, id, _)| (placement, id)).collect()
    }

    /// Records a click on an impression and charges its price if the campaign's budget for today can pay it
    /// (else the click is free). A second click on one impression is not charged again.
    pub async fn click(&self, impression_id: &str) -> Result<ClickOutcome, CommerceError> {
        let now = now_ms();
        let day = now / DAY_MS;
        let mut transaction = self.db.pool().begin().await?;
        // Writing first takes the write lock before anything is read: on SQLite a transaction that reads and
        // then writes fails outright (not after a wait) if another writer committed in between.
        sqlx::query("UPDATE ads_impressions SET clicked_at = clicked_at WHERE id = $1")
            .bind(impression_id)
            .execute(&mut *transaction)
            .await?;
        let impression: Option<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT campaign_id, product_id, price_micros, clicked_at FROM ads_impressions WHERE id = $1",
        )
        .bind(impression_id)
        .fetch_optional(&mut *transaction)
        .await?;
        let (campaign_id, product_id, price_micros, clicked_at) = impression
            .ok_or_else(|| CommerceError::NotFound(format!("no ad impression has the id '{impression_id}'")))?;
        if clicked_at.is_some() {
            return Ok(ClickOutcome {
                campaign_id,
                product_id,
                charged_micros: 0,
                repeated: true,
            });
        }
        let budget = self
            .campaigns()
            .iter()
            .find(|campaign| campaign.id == campaign_id)
            .map_or(0, |campaign| campaign.daily_budget_micros);
        let charged = sqlx::query(
            "INSERT INTO ads_spend (campaign_id, day, spent_micros) SELECT $1, $2, $3 WHERE $3 <= $4 \
             ON CONFLICT (campaign_id, day) DO UPDATE SET spent_micros = ads_spend.spent_micros + excluded.spent_micros \
             WHERE ads_spend.spent_micros + excluded.spent_micros <= $4",
        )
        .bind(&campaign_id)
        .bind(day)
        .bind(price_micros)
        .bind(budget)
        .execute(&mut *transaction)
        .await?
        .rows_affected()
            == 1;
        let charged_micros = if charged { price_micros } else { 0 };
        sqlx::query("UPDATE ads_impressions SET clicked_at = $1, charged_micros = $2 WHERE id = $3")
            .bind(now)
            .bind(charged_micros)
            .bind(impression_id)
            .execute(&mut *transaction)
            .await?;
        let spent: Option<i64> =
            sqlx::query_scalar("SELECT spent_micros FROM ads_spend WHERE campaign_id = $1 AND day = $2")
                .bind(&campaign_id)
                .bind(day)
                .fetch_optional(&mut *transaction)
                .await?;
        transaction.commit().await?;
        let mut spend = self.spend_today.lock().unwrap_or_else(PoisonError::into_inner);
        if spend.0 != day {
            *spend = (day, HashMap::new());
        }
        spend.1.insert(campaign_id.clone(), spent.unwrap_or(0));
        Ok(ClickOutcome {
            campaign_id,
            product_id,
            charged_micros,
            repeated: false,
        })
    }

    /// Records an order of `product_id` for `amount_micros`, attributed to the latest click on an ad for that
    /// product within the attribution window, if any.
    pub async fn order(&self, product_id: &str, amount_micros: i64) -> Result<OrderOutcome, CommerceError> {
        let now = now_ms();
        let click: Option<(String, String)> = sqlx::query_as(
            "SELECT id, campaign_id FROM ads_impressions WHERE product_id = $1 AND clicked_at IS NOT NULL \
             AND clicked_at >= $2 ORDER BY clicked_at DESC LIMIT 1",
        )
        .bind(product_id)
        .bind(now - ATTRIBUTION_WINDOW_MS)
        .fetch_optional(self.db.pool())
        .await?;
        let (impression_id, campaign_id) = click.unzip();
        let id = uuid::Uuid::new_v4().simple().to_string();
        sqlx::query(
            "INSERT INTO ads_orders (id, product_id, amount_micros, ordered_at, impression_id, campaign_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(product_id)
        .bind(amount_micros)
        .bind(now)
        .bind(&impression_id)
        .bind(&campaign_id)
        .execute(self.db.pool())
        .await?;
        Ok(OrderOutcome {
            order_id: id,
            attributed_campaign_id: campaign_id,
        })
    }

    /// Sponsored-product impressions and clicks per hour since `since_ms` (unix milliseconds), as
    /// `(kind, hour since the epoch, count)` with kinds `ad_impression` and `ad_click`: shopper events for the
    /// loop's demand series.
    pub async fn hourly_counts(&self, since_ms: i64) -> Result<Vec<(String, i64, i64)>, CommerceError> {
        let mut counts: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT 'ad_impression', CAST(shown_at / 3600000 AS BIGINT) AS hour, CAST(COUNT(*) AS BIGINT) \
             FROM ads_impressions WHERE shown_at >= $1 GROUP BY hour",
        )
        .bind(since_ms)
        .fetch_all(self.db.pool())
        .await?;
        let clicks: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT 'ad_click', CAST(clicked_at / 3600000 AS BIGINT) AS hour, CAST(COUNT(*) AS BIGINT) \
             FROM ads_impressions WHERE clicked_at >= $1 GROUP BY hour",
        )
        .bind(since_ms)
        .fetch_all(self.db.pool())
        .await?;
        counts.extend(clicks);
        Ok(counts)
    }

    /// [`Ads::report`] over the last 30 days.
    pub async fn recent_report(&self) -> Result<Vec<CampaignReport>, CommerceError> {
        let to = now_ms() + 1;
        self.report(to - REPORT_WINDOW_MS, to).await
    }

    /// Per campaign, what happened between `from_ms` and `to_ms` (unix milliseconds): impressions shown,
    /// clicks, spend, attributed sales, and the ratios advertisers read.
    pub async fn report(&self, from_ms: i64, to_ms: i64) -> Result<Vec<CampaignReport>, CommerceError> {
        let impressions: Vec<(String, i64)> = sqlx::query_as(
            "SELECT campaign_id, CAST(COUNT(*) AS BIGINT) FROM ads_impressions \
             WHERE shown_at >= $1 AND shown_at < $2 GROUP BY campaign_id",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.db.pool())
        .await?;
        let clicks: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT campaign_id, CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(charged_micros), 0) AS BIGINT) \
             FROM ads_impressions WHERE clicked_at >= $1 AND clicked_at < $2 GROUP BY campaign_id",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.db.pool())
        .await?;
        let orders: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT campaign_id, CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) \
             FROM ads_orders WHERE campaign_id IS NOT NULL AND ordered_at >= $1 AND ordered_at < $2 \
             GROUP BY campaign_id",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.db.pool())
        .await?;
        let impressions: HashMap<String, i64> = impressions.into_iter().collect();
        let clicks: HashMap<String, (i64, i64)> = clicks.into_iter().map(|(id, n, spend)| (id, (n, spend))).collect();
        let orders: HashMap<String, (i64, i64)> = orders.into_iter().map(|(id, n, sales)| (id, (n, sales))).collect();
        Ok(self
            .campaigns()
            .iter()
            .map(|campaign| {
                let impressions = impressions.get(&campaign.id).copied().unwrap_or(0);
                let (clicks, spend_micros) = clicks.get(&campaign.id).copied().unwrap_or((0, 0));
                let (orders, sales_micros) = orders.get(&campaign.id).copied().unwrap_or((0, 0));
                CampaignReport {
                    campaign_id: campaign.id.clone(),
                    advertiser: campaign.advertiser.clone(),
                    name: campaign.name.clone(),
                    impressions,
                    clicks,
                    ctr: ratio(clicks, impressions),
                    spend_micros,
                    orders,
                    sales_micros,
                    acos: ratio(spend_micros, sales_micros),
                }
            })
            .collect())
    }
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// What a click did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClickOutcome {
    /// The campaign whose ad was clicked.
    pub campaign_id: String,
    /// The product the ad was for.
    pub product_id: String,
    /// What the click cost the campaign: the auction's price, or 0 when today's budget could not pay it.
    pub charged_micros: i64,
    /// Whether this impression had been clicked before (a repeat is never charged).
    pub repeated: bool,
}

/// What recording an order did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderOutcome {
    /// The order's id.
    pub order_id: String,
    /// The campaign the sale is attributed to, if an ad for the product was clicked within the window.
    pub attributed_campaign_id: Option<String>,
}

/// One campaign's figures over a time range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignReport {
    /// The campaign.
    pub campaign_id: String,
    /// Who pays.
    pub advertiser: String,
    /// Its name.
    pub name: String,
    /// Ads shown.
    pub impressions: i64,
    /// Ads clicked.
    pub clicks: i64,
    /// Clicks per impression.
    pub ctr: Option<f64>,
    /// Charged for clicks, in micro-dollars.
    pub spend_micros: i64,
    /// Orders attributed.
    pub orders: i64,
    /// Their value, in micro-dollars.
    pub sales_micros: i64,
    /// Advertising cost of sales: spend per sales.
    pub acos: Option<f64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn concurrent_clicks_never_spend_past_the_daily_budget() {
        let ads = Arc::new(
            Ads::open(Database::open_in_memory().await.unwrap(), AuctionRules::default())
                .await
                .unwrap(),
        );
        let campaign = Campaign {
            id: "c".to_owned(),
            advertiser: "a".to_owned(),
            name: "n".to_owned(),
            status: CampaignStatus::Active,
            daily_budget_micros: 1_000_000,
            products: vec!["p".to_owned()],
            keywords: vec![Target {
                value: "bed".to_owned(),
                bid_micros: 300_000,
            }],
            categories: vec![],
        };
        ads.save_campaign(&campaign).await.unwrap();
        for index in 0..20i64 {
            sqlx::query(
                "INSERT INTO ads_impressions (id, campaign_id, product_id, query, slot, price_micros, shown_at) \
                 VALUES ($1, 'c', 'p', 'bed', 0, $2, 0)",
            )
            .bind(format!("i{index}"))
            .bind(130_000 + index * 7_000)
            .execute(ads.db.pool())
            .await
            .unwrap();
        }
        let clicks: Vec<_> = (0..20)
            .map(|index| {
                let ads = Arc::clone(&ads);
                tokio::spawn(async move { ads.click(&format!("i{index}")).await.unwrap() })
            })
            .collect();
        let mut charged = 0;
        for click in clicks {
            charged += click.await.unwrap().charged_micros;
        }
        assert!(charged > 0 && charged <= 1_000_000, "{charged}");
        assert_eq!(ads.spent_today("c"), charged);
        // Spent out: the campaign no longer bids.
        let bids = ads.bids(
            &["bed".to_owned()],
            |text| vec![text.to_owned()],
            |_| false,
            |_| Some(0),
            |_| 1.0,
        );
        assert!(bids.is_empty() || bids[0].budget_left_micros < bids[0].bid_micros);
    }
}
