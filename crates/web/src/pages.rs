//! The storefront's HTML, as pure functions from plain data to markup. maud escapes every interpolated value;
//! values that go into URLs are percent-encoded here first.

use commerce::{CategoryCount, Product, ProductAnswer, SearchPage};
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Results per search page.
pub(crate) const PER_PAGE: usize = 20;
/// The deepest page a search can show.
pub(crate) const MAX_PAGE: usize = commerce::SearchQuery::MAX_RESULT_WINDOW / PER_PAGE;
/// How many top-level categories the home page offers.
const HOME_CATEGORIES: usize = 8;
/// Seconds between reloads of a page shown while the catalog loads.
const LOADING_REFRESH_SECONDS: u32 = 2;

/// Left as they are in a query value or a path segment; everything else is percent-encoded.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// What the home page shows of a loaded catalog.
pub(crate) struct HomeCatalog {
    pub(crate) product_count: usize,
    pub(crate) categories: Vec<CategoryCount>,
}

/// The page around every body: head, brand header (with the search box unless the body has its own), footer.
pub(crate) struct Chrome<'a> {
    pub(crate) title: &'a str,
    /// The search box's text, or `None` when the body carries the search box.
    pub(crate) header_search: Option<&'a str>,
    /// Reload the page on its own, while the catalog loads.
    pub(crate) auto_refresh: bool,
}

pub(crate) fn layout(chrome: Chrome<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if chrome.auto_refresh {
                    meta http-equiv="refresh" content=(LOADING_REFRESH_SECONDS);
                }
                title { (chrome.title) " · flywheel store" }
                link rel="stylesheet" href="/assets/store.css";
            }
            body {
                a.skip-link href="#main" { "Skip to content" }
                header.site-header {
                    div.wrap.site-header-inner {
                        a.brand href="/" { span.brand-mark aria-hidden="true" { "◎" } "flywheel store" }
                        @if let Some(query) = chrome.header_search {
                            (search_form(query, false))
                        }
                        nav.site-nav aria-label="Store" {
                            a href="/assistant" { "Assistant" }
                            a href="/cart" { "Cart" }
                        }
                    }
                }
                main #main.wrap { (body) }
                footer.site-footer {
                    div.wrap {
                        "Demo catalog: "
                        a href="https://github.com/wayfair/WANDS" { "WANDS" }
                        " by Wayfair, MIT license."
                    }
                }
            }
        }
    }
}

fn search_form(query: &str, large: bool) -> Markup {
    html! {
        form.search-form.search-form-large[large] role="search" action="/search" method="get" {
            label.visually-hidden for="search-q" { "Search products" }
            input #search-q type="search" name="q" value=(query) placeholder="Search beds, lamps, rugs…"
                autocomplete="off" required;
            button type="submit" { "Search" }
        }
    }
}

/// `GET /`: the search box and the top categories, or a loading notice.
pub(crate) fn home(catalog: Option<&HomeCatalog>) -> Markup {
    let chrome = Chrome {
        title: "Home",
        header_search: None,
        auto_refresh: catalog.is_none(),
    };
    layout(
        chrome,
        html! {
            section.hero {
                h1 { "Find something for your home" }
                (search_form("", true))
                @match catalog {
                    Some(catalog) => p.hero-note { "Search " (thousands(catalog.product_count)) " products." },
                    None => p.notice role="status" { "The catalog is still loading; this page refreshes on its own." },
                }
            }
            @if let Some(catalog) = catalog {
                @if !catalog.categories.is_empty() {
                    section aria-labelledby="categories-heading" {
                        h2 #categories-heading { "Shop by category" }
                        ul.category-grid {
                            @for category in catalog.categories.iter().take(HOME_CATEGORIES) {
                                li {
                                    a.category-card href=(search_url(&category.name, 1)) {
                                        span.category-name { (category.name) }
                                        span.category-count { (thousands(category.product_count)) " products" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// `GET /search` without a query.
pub(crate) fn search_prompt() -> Markup {
    let chrome = Chrome {
        title: "Search",
        header_search: None,
        auto_refresh: false,
    };
    layout(
        chrome,
        html! {
            section.hero {
                h1 { "What are you looking for?" }
                (search_form("", true))
            }
        },
    )
}

/// `GET /search?q=`: one page of results, or the empty state.
pub(crate) fn search_results(results: &SearchPage, page: usize, filter: &str) -> Markup {
    let query = results.query.as_str();
    let title = format!("“{query}”");
    let chrome = Chrome {
        title: &title,
        header_search: Some(query),
        auto_refresh: false,
    };
    let last_page = results.total.div_ceil(PER_PAGE).min(MAX_PAGE);
    let first_shown = page.saturating_sub(1) * PER_PAGE + 1;
    let body = if results.total == 0 {
        html! {
            h1 { "No results for “" (query) "”" }
            p.empty { "Check the spelling, try fewer or more general words, or " a href="/" { "browse the categories" } "." }
        }
    } else if results.hits.is_empty() {
        html! {
            h1 { "Results for “" (query) "”" }
            p.empty { "There is no page " (page) " of these results. " a href=(filtered_search_url(query, 1, filter)) { "Back to the first page" } "." }
        }
    } else {
        html! {
            h1 { "Results for “" (query) "”" }
            p.result-count role="status" {
                "Showing " (thousands(first_shown)) "–" (thousands(first_shown + results.hits.len() - 1))
                " of " (thousands(results.total)) " " (plural(results.total, "result", "results"))
            }
            (facet_panel(results, filter))
            @if !results.sponsored.is_empty() {
                section.sponsored aria-label="Sponsored products" {
                    @for ad in &results.sponsored {
                        div.result.sponsored-result {
                            span.sponsored-label { (ad.label) }
                            h2.result-name { a href=(format!("/sponsored/{}", ad.impression_id)) { (ad.product.name) } }
                            @if !ad.product.class.is_empty() {
                                p.result-class { (ad.product.class.join(" · ")) }
                            }
                        }
                    }
                }
            }
            ol.results {
                @for hit in &results.hits {
                    li.result { (result_card(&hit.product, query)) }
                }
            }
            @if last_page > 1 {
                nav.pagination aria-label="Pagination" {
                    @if page > 1 {
                        a rel="prev" href=(filtered_search_url(query, page - 1, filter)) { "← Previous" }
                    } @else {
                        span.disabled aria-hidden="true" { "← Previous" }
                    }
                    span.page-of { "Page " (page) " of " (last_page) }
                    @if page < last_page {
                        a rel="next" href=(filtered_search_url(query, page + 1, filter)) { "Next →" }
                    } @else {
                        span.disabled aria-hidden="true" { "Next →" }
                    }
                }
            }
        }
    };
    layout(chrome, body)
}

fn result_card(product: &Product, query: &str) -> Markup {
    html! {
        h2.result-name { a href=(product_url(&product.id, Some(query))) { (product.name) } }
        @if !product.class.is_empty() {
            p.result-class { (product.class.join(" · ")) }
        }
        @if !product.category_path.is_empty() {
            ol.breadcrumb aria-label="Category" {
                @for level in &product.category_path { li { (level) } }
            }
        }
        (rating(product))
        @if let Some(price) = product.price {
            p.result-price { (format!("{price:.2}")) }
        }
    }
}

/// What came of a question asked on a product page.
pub(crate) enum Asked {
    /// The assistant answered.
    Answer(ProductAnswer),
    /// The question could not be answered; the message is for the shopper.
    Problem { question: String, message: String },
}

/// `GET /products/{id}`; `query` is the search the shopper came from, if any, and `asked` the question just
/// asked on this page, if any.
pub(crate) fn product_page(
    product: &Product,
    query: Option<&str>,
    asked: Option<&Asked>,
    also_viewed: &[Product],
) -> Markup {
    let chrome = Chrome {
        title: &product.name,
        header_search: Some(query.unwrap_or_default()),
        auto_refresh: false,
    };
    layout(
        chrome,
        html! {
            @match query {
                Some(query) => a.back-link href=(search_url(query, 1)) { "← Back to results for “" (query) "”" },
                None => a.back-link href="/" { "← Back to the store" },
            }
            article.product {
                @if !product.category_path.is_empty() {
                    nav aria-label="Category" {
                        ol.breadcrumb {
                            @for level in &product.category_path {
                                li { a href=(search_url(level, 1)) { (level) } }
                            }
                        }
                    }
                }
                h1.product-name { (product.name) }
                (rating(product))
                @if let Some(price) = product.price {
                    p.product-price { (format!("{price:.2}")) }
                }
                @if let Some(description) = &product.description {
                    p.product-description { (description) }
                }
                form.add-to-cart action="/cart" method="post" {
                    input type="hidden" name="product_id" value=(product.id);
                    button type="submit" { "Add to cart" }
                }
                dl.product-facts {
                    dt { "Class" }
                    dd { @if product.class.is_empty() { "Unclassified" } @else { (product.class.join(", ")) } }
                    dt { "Category" }
                    dd { @if product.category_path.is_empty() { "Uncategorized" } @else { (product.category_path.join(" / ")) } }
                    @for (name, value) in &product.attributes {
                        dt { (name) }
                        dd { (value) }
                    }
                    dt { "Product ID" }
                    dd { code { (product.id) } }
                }
            }
            (ask_section(product, asked))
            @if !also_viewed.is_empty() {
                section.also-viewed aria-label="Customers also viewed" {
                    h2 { "Customers also viewed" }
                    ul {
                        @for other in also_viewed {
                            li { a href=(product_url(&other.id, None)) { (other.name) } }
                        }
                    }
                }
            }
        },
    )
}

/// The "ask about this product" form, and the answer to the question just asked. A plain form post: it works
/// without JavaScript.
fn ask_section(product: &Product, asked: Option<&Asked>) -> Markup {
    let question = match asked {
        Some(Asked::Problem { question, .. }) => question.as_str(),
        _ => "",
    };
    html! {
        section.ask aria-labelledby="ask-heading" {
            h2 #ask-heading { "Ask about this product" }
            form.ask-form method="post" action=(format!("{}/ask", product_url(&product.id, None))) {
                label for="question" { "Your question" }
                input #question type="text" name="question" maxlength="500" required
                    placeholder="What is it made of?" value=(question);
                button type="submit" { "Ask" }
            }
            @match asked {
                Some(Asked::Answer(answer)) => div.answer role="status" {
                    p.answer-question { "You asked: " (answer.question) }
                    p.answer-text { (answer.answer) }
                    p.answer-note { "Answered by " (answer.model) " from this listing's facts only." }
                },
                Some(Asked::Problem { message, .. }) => p.ask-problem role="alert" { (message) },
                None => {},
            }
        }
    }
}

fn rating(product: &Product) -> Markup {
    match product.rating {
        Some(stars) => html! {
            p.rating {
                span aria-hidden="true" { "★ " }
                (format!("{stars:.1}")) " out of 5 · "
                (thousands(product.review_count as usize)) " " (plural(product.review_count as usize, "review", "reviews"))
            }
        },
        None => html! { p.rating.rating-none { "No ratings yet" } },
    }
}

/// Shown while the catalog loads; reloads itself.
pub(crate) fn loading(query: &str) -> Markup {
    let chrome = Chrome {
        title: "Loading",
        header_search: Some(query),
        auto_refresh: true,
    };
    layout(
        chrome,
        html! {
            h1 { "The store is opening" }
            p.notice role="status" { "The catalog is still loading; this page refreshes on its own in a moment." }
        },
    )
}

/// An unknown product id.
pub(crate) fn product_not_found(id: &str) -> Markup {
    let chrome = Chrome {
        title: "Product not found",
        header_search: Some(""),
        auto_refresh: false,
    };
    layout(
        chrome,
        html! {
            h1 { "Product not found" }
            p.empty { "No product has the id “" code { (id) } "”. It may have been removed, or the link is mistyped." }
            p { a href="/" { "Back to the store" } }
        },
    )
}

/// Any other failure: a title and what to tell the shopper.
pub(crate) fn problem(title: &str, message: &str, query: &str) -> Markup {
    let chrome = Chrome {
        title,
        header_search: Some(query),
        auto_refresh: false,
    };
    layout(
        chrome,
        html! {
            h1 { (title) }
            p.empty { (message) }
            p { a href="/" { "Back to the store" } }
        },
    )
}

/// Facet counts as links: each narrows the search to that value; the active filter can be cleared.
fn facet_panel(results: &SearchPage, filter: &str) -> Markup {
    let query = results.query.as_str();
    html! {
        @if !results.facets.is_empty() {
            nav.facets aria-label="Filters" {
                @if !filter.is_empty() {
                    a.clear-filter href=(search_url(query, 1)) { "Clear filter" }
                }
                @for facet in &results.facets {
                    @if !facet.values.is_empty() {
                        section.facet {
                            h2 { (if facet.field == "class" { "Type" } else { "Category" }) }
                            ul {
                                @for value in facet.values.iter().take(8) {
                                    @let clause = format!("{}:{}", facet.field, value.value);
                                    li {
                                        a href=(filtered_search_url(query, 1, &clause)) aria-current=[(clause == filter).then_some("true")] {
                                            (value.value) " (" (thousands(value.count)) ")"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn filtered_search_url(query: &str, page: usize, filter: &str) -> String {
    if filter.is_empty() {
        return search_url(query, page);
    }
    format!(
        "{}&filter={}",
        search_url(query, page),
        utf8_percent_encode(filter, URL_COMPONENT)
    )
}

fn search_url(query: &str, page: usize) -> String {
    let query = utf8_percent_encode(query, URL_COMPONENT);
    if page == 1 {
        format!("/search?q={query}")
    } else {
        format!("/search?q={query}&page={page}")
    }
}

pub(crate) fn product_url(id: &str, query: Option<&str>) -> String {
    let id = utf8_percent_encode(id, URL_COMPONENT);
    match query {
        Some(query) => format!("/products/{id}?q={}", utf8_percent_encode(query, URL_COMPONENT)),
        None => format!("/products/{id}"),
    }
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

/// 6482 as "6,482".
fn thousands(number: usize) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(rating: Option<f32>, review_count: u32) -> Product {
        Product {
            id: "a/b c".to_owned(),
            name: "<script>alert(1)</script> chair".to_owned(),
            class: vec!["Chairs".to_owned()],
            category_path: vec!["Furniture".to_owned(), "Chairs & Seating".to_owned()],
            rating,
            review_count,
            description: None,
            price: None,
            features: vec![],
            attributes: Default::default(),
        }
    }

    #[test]
    fn ratings_are_shown_only_when_the_product_has_them() {
        assert!(rating(&product(None, 0)).into_string().contains("No ratings yet"));
        let rated = rating(&product(Some(4.25), 1_204)).into_string();
        assert!(rated.contains("4.2 out of 5 · 1,204 reviews"), "{rated}");
        assert!(rating(&product(Some(5.0), 1)).into_string().contains("1 review<"));
    }

    #[test]
    fn product_text_is_escaped_and_urls_are_encoded() {
        let html = product_page(&product(None, 0), Some("a&b \"c\""), None, &[]).into_string();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; chair"));
        assert!(html.contains(r#"href="/search?q=a%26b%20%22c%22""#), "{html}");
        assert!(html.contains(r#"href="/search?q=Chairs%20%26%20Seating""#));
        assert_eq!(product_url("a/b c", None), "/products/a%2Fb%20c");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (6_482, "6,482"),
            (1_234_567, "1,234,567"),
        ];
        for (number, text) in cases {
            assert_eq!(thousands(number), text);
        }
    }
}
