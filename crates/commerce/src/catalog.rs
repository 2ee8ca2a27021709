//! The product catalog: the `Product` record, the in-memory `Catalog` with its id lookup, and the WANDS
//! importer. Import is row-tolerant: a bad row is reported by line and skipped, never fatal to the rest.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::CommerceError;

/// One product of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    /// The product id, unique within the catalog.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The product classes (e.g. "Beds"); a product may have several or none.
    pub class: Vec<String>,
    /// The category path from the top level down, e.g. ["Furniture", "Bedroom Furniture", "Beds"].
    pub category_path: Vec<String>,
    /// The average customer rating, when the source has one.
    pub rating: Option<f32>,
    /// How many reviews the rating is based on.
    pub review_count: u32,
}

/// A row of a catalog file that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedRow {
    /// The 1-based line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// Why the row was skipped.
    pub reason: String,
}

/// The outcome of importing a catalog file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// How many products were imported.
    pub imported: usize,
    /// The rows that were skipped, in file order.
    pub rejected: Vec<RejectedRow>,
}

/// A top-level category and how many products sit under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryCount {
    /// The category name, e.g. "Furniture".
    pub name: String,
    /// Products whose category path starts with it.
    pub product_count: usize,
}

/// The products of a store, in import order, with a lookup by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    products: Vec<Product>,
    index_by_id: HashMap<String, usize>,
    top_level_categories: Vec<CategoryCount>,
}

/// The columns a WANDS product file must have; others are ignored.
const ID_COLUMN: &str = "product_id";
const NAME_COLUMN: &str = "product_name";
const CLASS_COLUMN: &str = "product_class";
const CATEGORY_COLUMN: &str = "category_hierarchy";

impl Catalog {
    /// Imports a WANDS `product.csv` file; see [`Catalog::read_wands`] for the format.
    pub fn load_wands(path: &Path) -> Result<(Catalog, ImportReport), CommerceError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|cause| CommerceError::CatalogRead {
            catalog: name.clone(),
            cause,
        })?;
        Catalog::read_wands(file, &name)
    }

    /// Imports a WANDS product file: tab-separated, with a header naming `product_id`, `product_name`,
    /// `product_class` and `category_hierarchy` (other columns are ignored). Classes are `|`-separated and
    /// category levels ` / `-separated. Rows without an id or a name, with a repeated id, with the wrong number
    /// of fields or not valid UTF-8 are skipped and reported. `name` says which catalog this is, in errors.
    pub fn read_wands(reader: impl io::Read, name: &str) -> Result<(Catalog, ImportReport), CommerceError> {
        let format_error = |reason: String| CommerceError::CatalogFormat {
            catalog: name.to_owned(),
            reason,
        };
        let mut csv = csv::ReaderBuilder::new()
            .delimiter(b'\t')
            // Field counts are checked per row so that one short row is rejected rather than failing the file.
            .flexible(true)
            .from_reader(reader);
        let header = csv
            .headers()
            .map_err(|error| format_error(format!("unreadable header: {error}")))?;
        let column = |column: &str| {
            header
                .iter()
                .position(|field| field.trim() == column)
                .ok_or_else(|| format_error(format!("the header has no '{column}' column")))
        };
        let columns = Columns {
            id: column(ID_COLUMN)?,
            name: column(NAME_COLUMN)?,
            class: column(CLASS_COLUMN)?,
            category: column(CATEGORY_COLUMN)?,
            count: header.len(),
        };

        let mut products = Vec::new();
        let mut index_by_id = HashMap::new();
        let mut first_line_by_id = HashMap::new();
        let mut report = ImportReport::default();
        for record in csv.records() {
            let record = match record {
                Ok(record) => record,
                Err(error) => {
                    let line = error.position().map_or(0, csv::Position::line);
                    let reason = match error.into_kind() {
                        csv::ErrorKind::Io(cause) => {
                            return Err(CommerceError::CatalogRead {
                                catalog: name.to_owned(),
                                cause,
                            });
                        }
                        csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".to_owned(),
                        other => format!("unreadable row: {other:?}"),
                    };
                    report.rejected.push(RejectedRow { line, reason });
                    continue;
                }
            };
            let line = record.position().map_or(0, csv::Position::line);
            let product = match parse_product(&record, &columns) {
                Ok(product) => product,
                Err(reason) => {
                    report.rejected.push(RejectedRow { line, reason });
                    continue;
                }
            };
            match first_line_by_id.entry(product.id.clone()) {
                Entry::Occupied(first) => report.rejected.push(RejectedRow {
                    line,
                    reason: format!("duplicate product_id '{}' (first on line {})", product.id, first.get()),
                }),
                Entry::Vacant(slot) => {
                    slot.insert(line);
                    index_by_id.insert(product.id.clone(), products.len());
                    products.push(product);
                }
            }
        }
        report.imported = products.len();
        Ok((Catalog::from_products(products, index_by_id), report))
    }

    /// The product with this id.
    pub fn get(&self, id: &str) -> Option<&Product> {
        self.index_by_id.get(id).map(|&index| &self.products[index])
    }

    /// How many products the catalog holds.
    pub fn len(&self) -> usize {
        self.products.len()
    }

    /// Whether the catalog holds no products.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// All products, in import order.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The top-level categories, most products first (ties by name).
    pub fn top_level_categories(&self) -> &[CategoryCount] {
        &self.top_level_categories
    }

    fn from_products(products: Vec<Product>, index_by_id: HashMap<String, usize>) -> Catalog {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for top in products.iter().filter_map(|product| product.category_path.first()) {
            *counts.entry(top).or_default() += 1;
        }
        let mut top_level_categories: Vec<CategoryCount> = counts
            .into_iter()
            .map(|(name, product_count)| CategoryCount {
                name: name.to_owned(),
                product_count,
            })
            .collect();
        top_level_categories.sort_by(|a, b| b.product_count.cmp(&a.product_count).then_with(|| a.name.cmp(&b.name)));
        Catalog {
            products,
            index_by_id,
            top_level_categories,
        }
    }
}

/// Column positions found in the header.
struct Columns {
    id: usize,
    name: usize,
    class: usize,
    category: usize,
    count: usize,
}

fn parse_product(record: &csv::StringRecord, columns: &Columns) -> Result<Product, String> {
    if record.len() != columns.count {
        return Err(format!(
            "expected {} tab-separated fields, found {}",
            columns.count,
            record.len()
        ));
    }
    let field = |index: usize| record.get(index).unwrap_or_default().trim();
    let id = field(columns.id);
    if id.is_empty() {
        return Err(format!("empty {ID_COLUMN}"));
    }
    let name = field(columns.name);
    if name.is_empty() {
        return Err(format!("empty {NAME_COLUMN} for product '{id}'"));
    }
    Ok(Product {
        id: id.to_owned(),
        name: name.to_owned(),
        class: split_nonempty(field(columns.class), "|"),
        category_path: split_nonempty(field(columns.category), " / "),
        // The WANDS subset carries no ratings; we never make them up.
        rating: None,
        review_count: 0,
    })
}

fn split_nonempty(text: &str, separator: &str) -> Vec<String> {
    text.split(separator)
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const HEADER: &str = "product_id\tproduct_name\tproduct_class\tcategory_hierarchy\n";

    fn read(body: &[u8]) -> (Catalog, ImportReport) {
        let mut file = HEADER.as_bytes().to_vec();
        file.extend_from_slice(body);
        Catalog::read_wands(file.as_slice(), "test.csv").unwrap()
    }

    #[test]
    fn parses_multi_valued_classes_and_category_paths() {
        let (catalog, report) = read(
            b"33\ttatianna floating shelf\tBookcases|Wall Mounted Shelves\tStorage & Organization / Wall Shelving\n",
        );
        assert_eq!(
            report,
            ImportReport {
                imported: 1,
                rejected: vec![]
            }
        );
        let shelf = catalog.get("33").unwrap();
        assert_eq!(shelf.class, ["Bookcases", "Wall Mounted Shelves"]);
        assert_eq!(shelf.category_path, ["Storage & Organization", "Wall Shelving"]);
        assert_eq!((shelf.rating, shelf.review_count), (None, 0));
    }

    #[test]
    fn empty_class_and_category_are_empty_lists() {
        let (catalog, report) = read(b"7\tmystery stool\t\t\n");
        assert_eq!(report.imported, 1);
        let stool = catalog.get("7").unwrap();
        assert!(stool.class.is_empty() && stool.category_path.is_empty());
    }

    #[test]
    fn quoted_fields_keep_their_inner_quotes() {
        let (catalog, _) = read(b"14116\tbar stool\tBar Stools\t\"Furniture / Bar (28\"\"-33\"\") Bar Stools\"\n");
        assert_eq!(
            catalog.get("14116").unwrap().category_path,
            ["Furniture", "Bar (28\"-33\") Bar Stools"]
        );
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_skipped() {
        let (catalog, report) = read(
            b"1\tgood chair\tChairs\tFurniture\n\
              \tno id\tChairs\tFurniture\n\
              3\t\tChairs\tFurniture\n\
              4\tshort row\n\
              1\tsame id again\tChairs\tFurniture\n\
              6\tbad \xff utf8\tChairs\tFurniture\n\
              7\tgood table\tTables\tFurniture\n",
        );
        assert_eq!(report.imported, 2);
        assert_eq!(catalog.len(), 2);
        let lines: Vec<u64> = report.rejected.iter().map(|row| row.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7]);
        assert_eq!(report.rejected[3].reason, "duplicate product_id '1' (first on line 2)");
        assert_eq!(catalog.get("1").unwrap().name, "good chair");
        assert_eq!(catalog.get("7").unwrap().name, "good table");
    }

    #[test]
    fn a_header_without_the_wands_columns_fails_the_file() {
        let error = Catalog::read_wands(b"id\tname\n1\tchair\n".as_slice(), "x.csv").unwrap_err();
        assert_eq!(error.code(), "catalog_format_invalid");
        assert!(error.to_string().contains("'product_id'"), "{error}");
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let error = Catalog::load_wands(Path::new("/nonexistent/product.csv")).unwrap_err();
        assert_eq!(error.code(), "catalog_read_failed");
    }

    #[test]
    fn top_level_categories_count_products_most_first() {
        let (catalog, _) = read(b"1\ta\t\tOutdoor / Grills\n2\tb\t\tFurniture / Beds\n3\tc\t\tFurniture\n4\td\t\t\n");
        let names: Vec<(&str, usize)> = catalog
            .top_level_categories()
            .iter()
            .map(|category| (category.name.as_str(), category.product_count))
            .collect();
        assert_eq!(names, [("Furniture", 2), ("Outdoor", 1)]);
    }
}
