//! The product catalog: the `Product` record and the in-memory `Catalog` with its id lookup.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::CommerceError;
use crate::import::{CatalogFormat, FieldMapping, RejectedRow, read_products};

/// One product of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub review_count: u32,
    /// Free text about the product, when the source has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The price in the store's currency, when the source has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// Feature bullets, as the source lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Any other facts, by name: colour, size, material, brand...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
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

impl Catalog {
    /// Imports a WANDS `product.csv` file; see [`CatalogFormat::Wands`] for the format.
    pub fn load_wands(path: &Path) -> Result<(Catalog, ImportReport), CommerceError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|cause| CommerceError::CatalogRead {
            catalog: name.clone(),
            cause,
        })?;
        Catalog::read_wands(file, &name)
    }

    /// Imports a WANDS product file. Bad rows (no id or name, a repeated id, the wrong number of fields, not
    /// UTF-8) are skipped and reported. `name` says which catalog this is, in errors.
    pub fn read_wands(reader: impl io::Read, name: &str) -> Result<(Catalog, ImportReport), CommerceError> {
        let file = read_products(reader, CatalogFormat::Wands, &FieldMapping::default(), name)?;
        let report = ImportReport {
            imported: file.products.len(),
            rejected: file.rejected,
        };
        Ok((Catalog::from_products(file.products), report))
    }

    /// The row (position in [`Catalog::products`]) of the product with this id.
    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.index_by_id.get(id).copied()
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

    /// A catalog of these products, in this order; a later product with an id already seen is dropped.
    pub fn from_products(mut products: Vec<Product>) -> Catalog {
        let mut index_by_id = HashMap::with_capacity(products.len());
        let mut kept = 0;
        for index in 0..products.len() {
            if index_by_id.contains_key(&products[index].id) {
                continue;
            }
            products.swap(kept, index);
            index_by_id.insert(products[kept].id.clone(), kept);
            kept += 1;
        }
        products.truncate(kept);
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
        assert_eq!(report.rejected[3].reason, "duplicate id '1' (first on line 2)");
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
