//! Reading product files: WANDS (tab-separated, its own column names), any CSV and JSON Lines, each with a
//! declared field mapping from the product's fields to the file's columns or keys. Reading is row-tolerant: a
//! bad row is reported with its line and the reason, and the rest are read. Only a file that cannot be read at
//! all (missing, no header, a mapped column absent) fails whole.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead};

use serde::Serialize;
use serde_json::Value;

use crate::{CommerceError, Product};

/// The layout of a product file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogFormat {
    /// The WANDS `product.csv`: tab-separated, columns `product_id`, `product_name`, `product_class`,
    /// `category_hierarchy`, and optionally `product_description`, `product_features` (`key:value|...`),
    /// `average_rating`, `review_count`.
    Wands,
    /// Comma- or tab-separated (whichever the header uses) with a header row; columns not mapped to a product
    /// field become attributes.
    Csv,
    /// One JSON object per line; keys not mapped to a product field become attributes, and an `attributes`
    /// object is merged into them.
    Jsonl,
}

impl CatalogFormat {
    /// The format named `name`: `wands`, `csv` or `jsonl`.
    pub fn parse(name: &str) -> Result<CatalogFormat, CommerceError> {
        match name {
            "wands" => Ok(CatalogFormat::Wands),
            "csv" => Ok(CatalogFormat::Csv),
            "jsonl" => Ok(CatalogFormat::Jsonl),
            other => Err(CommerceError::InvalidRequest(format!(
                "format must be wands, csv or jsonl, got '{other}'"
            ))),
        }
    }
}

impl CatalogFormat {
    /// Guesses a file's format from its first bytes: a JSON object is JSON Lines, a header naming WANDS's
    /// `product_id` and `product_name` is WANDS, anything else is CSV.
    pub fn detect(head: &[u8]) -> CatalogFormat {
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let first_line = head.split(|&byte| byte == b'\n').next().unwrap_or_default();
        let first_line = String::from_utf8_lossy(first_line);
        if first_line.trim_start().starts_with('{') {
            CatalogFormat::Jsonl
        } else if first_line.contains("product_id") && first_line.contains("product_name") {
            CatalogFormat::Wands
        } else {
            CatalogFormat::Csv
        }
    }
}

/// A product field a file's column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProductField {
    /// The product id (required).
    Id,
    /// The display name (required).
    Name,
    /// Free text about the product.
    Description,
    /// The price, a non-negative number.
    Price,
    /// The average rating, 0 to 5.
    Rating,
    /// How many reviews the rating rests on.
    ReviewCount,
    /// Product classes, `|`-separated in text files.
    Class,
    /// The category path, ` / `- or `>`-separated in text files.
    Category,
    /// Feature bullets, `|`-separated in text files; `key:value` ones also become attributes.
    Features,
}

impl ProductField {
    const ALL: [ProductField; 9] = [
        ProductField::Id,
        ProductField::Name,
        ProductField::Description,
        ProductField::Price,
        ProductField::Rating,
        ProductField::ReviewCount,
        ProductField::Class,
        ProductField::Category,
        ProductField::Features,
    ];

    /// The field's name in mappings, and the column a generic file is read from by default.
    pub fn name(self) -> &'static str {
        match self {
            ProductField::Id => "id",
            ProductField::Name => "name",
            ProductField::Description => "description",
            ProductField::Price => "price",
            ProductField::Rating => "rating",
            ProductField::ReviewCount => "review_count",
            ProductField::Class => "class",
            ProductField::Category => "category",
            ProductField::Features => "features",
        }
    }

    fn wands_column(self) -> &'static str {
        match self {
            ProductField::Id => "product_id",
            ProductField::Name => "product_name",
            ProductField::Description => "product_description",
            ProductField::Price => "price",
            ProductField::Rating => "average_rating",
            ProductField::ReviewCount => "review_count",
            ProductField::Class => "product_class",
            ProductField::Category => "category_hierarchy",
            ProductField::Features => "product_features",
        }
    }
}

/// Which column (or JSON key) fills each product field. Fields left out are read from the format's default
/// column when the file has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMapping {
    declared: BTreeMap<ProductField, String>,
}

impl FieldMapping {
    /// Parses declarations of the form `field=column`, e.g. `name=title`, `price=sale_price`.
    pub fn parse<'a>(declarations: impl IntoIterator<Item = &'a str>) -> Result<FieldMapping, CommerceError> {
        let mut declared = BTreeMap::new();
        for declaration in declarations {
            let (field, column) = declaration
                .split_once('=')
                .map(|(field, column)| (field.trim(), column.trim()))
                .filter(|(_, column)| !column.is_empty())
                .ok_or_else(|| {
                    CommerceError::InvalidRequest(format!(
                        "a field mapping is field=column, e.g. name=title; got '{declaration}'"
                    ))
                })?;
            let field = ProductField::ALL
                .into_iter()
                .find(|candidate| candidate.name() == field)
                .ok_or_else(|| {
                    let known: Vec<&str> = ProductField::ALL.iter().map(|field| field.name()).collect();
                    CommerceError::InvalidRequest(format!(
                        "unknown product field '{field}' in mapping '{declaration}'; fields are {}",
                        known.join(", ")
                    ))
                })?;
            if declared.insert(field, column.to_owned()).is_some() {
                return Err(CommerceError::InvalidRequest(format!(
                    "the field '{}' is mapped twice",
                    field.name()
                )));
            }
        }
        Ok(FieldMapping { declared })
    }

    /// The column to read `field` from, and whether the user named it (then the file must have it).
    fn source(&self, field: ProductField, format: CatalogFormat) -> (&str, bool) {
        match self.declared.get(&field) {
            Some(column) => (column, true),
            None if format == CatalogFormat::Wands => (field.wands_column(), false),
            None => (field.name(), false),
        }
    }
}

/// A row of a catalog file that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedRow {
    /// The 1-based line of the file where the row starts (a CSV header is line 1).
    pub line: u64,
    /// Why the row was skipped.
    pub reason: String,
}

/// The products read from a file and the rows skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductFile {
    /// The products, in file order; ids are unique.
    pub products: Vec<Product>,
    /// The rows that were skipped, in file order.
    pub rejected: Vec<RejectedRow>,
}

/// Reads a product file of `format` through `mapping`. `name` says which file this is, in errors.
pub fn read_products(
    reader: impl io::Read,
    format: CatalogFormat,
    mapping: &FieldMapping,
    name: &str,
) -> Result<ProductFile, CommerceError> {
    let rows = match format {
        CatalogFormat::Wands | CatalogFormat::Csv => read_delimited(reader, format, mapping, name)?,
        CatalogFormat::Jsonl => read_json_lines(reader, mapping, name)?,
    };
    let mut file = ProductFile::default();
    let mut first_line_by_id: HashMap<String, u64> = HashMap::new();
    for (line, row) in rows {
        match row {
            Err(reason) => file.rejected.push(RejectedRow { line, reason }),
            Ok(product) => match first_line_by_id.entry(product.id.clone()) {
                Entry::Occupied(first) => file.rejected.push(RejectedRow {
                    line,
                    reason: format!("duplicate id '{}' (first on line {})", product.id, first.get()),
                }),
                Entry::Vacant(slot) => {
                    slot.insert(line);
                    file.products.push(product);
                }
            },
        }
    }
    Ok(file)
}

type Row = (u64, Result<Product, String>);

fn format_error(catalog: &str, reason: String) -> CommerceError {
    CommerceError::CatalogFormat {
        catalog: catalog.to_owned(),
        reason,
    }
}

fn read_delimited(
    reader: impl io::Read,
    format: CatalogFormat,
    mapping: &FieldMapping,
    name: &str,
) -> Result<Vec<Row>, CommerceError> {
    let mut reader = io::BufReader::new(reader);
    let delimiter = match format {
        CatalogFormat::Wands => b'\t',
        _ => {
            // The header decides: a tab-separated export is as common as a comma-separated one.
            let head = reader.fill_buf().map_err(|cause| CommerceError::CatalogRead {
                catalog: name.to_owned(),
                cause,
            })?;
            let first_line = head.split(|&byte| byte == b'\n').next().unwrap_or_default();
            let tabs = first_line.iter().filter(|&&byte| byte == b'\t').count();
            let commas = first_line.iter().filter(|&&byte| byte == b',').count();
            if tabs > commas { b'\t' } else { b',' }
        }
    };
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        // Field counts are checked per row so that one short row is rejected rather than failing the file.
        .flexible(true)
        .from_reader(reader);
    let header: Vec<String> = csv
        .headers()
        .map_err(|error| format_error(name, format!("unreadable header: {error}")))?
        .iter()
        .map(|column| column.trim().to_owned())
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(format_error(name, "the file has no header row".to_owned()));
    }
    let mut columns: HashMap<ProductField, usize> = HashMap::new();
    for field in ProductField::ALL {
        let (column, declared) = mapping.source(field, format);
        match header.iter().position(|candidate| candidate == column) {
            Some(index) => {
                columns.insert(field, index);
            }
            None if declared || matches!(field, ProductField::Id | ProductField::Name) => {
                return Err(format_error(
                    name,
                    format!(
                        "the header has no '{column}' column for the product's {}{}",
                        field.name(),
                        if declared { "" } else { "; map one with field=column" }
                    ),
                ));
            }
            None if format == CatalogFormat::Wands && matches!(field, ProductField::Class | ProductField::Category) => {
                return Err(format_error(name, format!("the header has no '{column}' column")));
            }
            None => {}
        }
    }
    // WANDS's other columns are its own bookkeeping; a generic file's other columns are the product's attributes.
    let attribute_columns: Vec<(usize, &str)> = match format {
        CatalogFormat::Wands => Vec::new(),
        _ => header
            .iter()
            .enumerate()
            .filter(|(index, column)| !column.is_empty() && !columns.values().any(|mapped| mapped == index))
            .map(|(index, column)| (index, column.as_str()))
            .collect(),
    };

    let mut rows = Vec::new();
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
                rows.push((line, Err(reason)));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != header.len() {
            let separator = if delimiter == b'\t' { "tab" } else { "comma" };
            rows.push((
                line,
                Err(format!(
                    "expected {} {separator}-separated fields, found {}",
                    header.len(),
                    record.len()
                )),
            ));
            continue;
        }
        let text = |field| {
            columns
                .get(&field)
                .and_then(|&index| record.get(index))
                .map(str::trim)
                .filter(|text| !text.is_empty())
        };
        let mut fields = RawFields::default();
        for field in ProductField::ALL {
            if let Some(value) = text(field) {
                fields.values.insert(field, RawValue::Text(value.to_owned()));
            }
        }
        for &(index, column) in &attribute_columns {
            if let Some(value) = record.get(index).map(str::trim).filter(|value| !value.is_empty()) {
                fields.attributes.insert(column.to_owned(), value.to_owned());
            }
        }
        rows.push((line, fields.into_product()));
    }
    Ok(rows)
}

fn read_json_lines(reader: impl io::Read, mapping: &FieldMapping, name: &str) -> Result<Vec<Row>, CommerceError> {
    let mut rows = Vec::new();
    let mut reader = io::BufReader::new(reader);
    let mut buffer = Vec::new();
    let mut line = 0u64;
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .map_err(|cause| CommerceError::CatalogRead {
                catalog: name.to_owned(),
                cause,
            })?;
        if read == 0 {
            break;
        }
        line += 1;
        let Ok(text) = std::str::from_utf8(&buffer) else {
            rows.push((line, Err("the line is not valid UTF-8".to_owned())));
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(_) => {
                rows.push((line, Err("the line is not a JSON object".to_owned())));
                continue;
            }
            Err(error) => {
                rows.push((line, Err(format!("invalid JSON: {error}"))));
                continue;
            }
        };
        rows.push((line, json_product(object, mapping)));
    }
    Ok(rows)
}

fn json_product(mut object: serde_json::Map<String, Value>, mapping: &FieldMapping) -> Result<Product, String> {
    let mut fields = RawFields::default();
    for field in ProductField::ALL {
        let (key, _) = mapping.source(field, CatalogFormat::Jsonl);
        let Some(value) = object.remove(key) else { continue };
        let raw = match value {
            Value::Null => continue,
            Value::String(text) if text.trim().is_empty() => continue,
            Value::String(text) => RawValue::Text(text.trim().to_owned()),
            Value::Number(number) => RawValue::Text(number.to_string()),
            Value::Array(items) => RawValue::List(
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(text) => Ok(text.trim().to_owned()),
                        Value::Number(number) => Ok(number.to_string()),
                        _ => Err(format!("'{key}' must be a list of strings")),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .filter(|item| !item.is_empty())
                    .collect(),
            ),
            Value::Bool(_) | Value::Object(_) => return Err(format!("'{key}' must be a string, number or list")),
        };
        fields.values.insert(field, raw);
    }
    if let Some(Value::Object(attributes)) = object.remove("attributes") {
        object.extend(attributes);
    }
    for (key, value) in object {
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text.trim().to_owned(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Value::Object(_) => {
                return Err(format!(
                    "the attribute '{key}' is an object; attributes are flat values"
                ));
            }
        };
        if !text.is_empty() {
            fields.attributes.insert(key, text);
        }
    }
    fields.into_product()
}

/// A field's value as the file gave it: text to be split or parsed, or an already-split list.
enum RawValue {
    Text(String),
    List(Vec<String>),
}

#[derive(Default)]
struct RawFields {
    values: HashMap<ProductField, RawValue>,
    attributes: BTreeMap<String, String>,
}

impl RawFields {
    fn text(&self, field: ProductField) -> Result<Option<&str>, String> {
        match self.values.get(&field) {
            None => Ok(None),
            Some(RawValue::Text(text)) => Ok(Some(text)),
            Some(RawValue::List(_)) => Err(format!("the {} must be a single value, not a list", field.name())),
        }
    }

    fn list(&self, field: ProductField, separators: &[&str]) -> Vec<String> {
        match self.values.get(&field) {
            None => Vec::new(),
            Some(RawValue::List(items)) => items.clone(),
            Some(RawValue::Text(text)) => {
                let separator = separators
                    .iter()
                    .find(|separator| text.contains(**separator))
                    .unwrap_or(&separators[0]);
                text.split(separator)
                    .map(str::trim)
                    .filter(|part| !part.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
        }
    }

    fn into_product(mut self) -> Result<Product, String> {
        let id = self.text(ProductField::Id)?.ok_or("empty id")?.to_owned();
        let name = self
            .text(ProductField::Name)?
            .ok_or_else(|| format!("empty name for product '{id}'"))?
            .to_owned();
        let price = match self.text(ProductField::Price)? {
            None => None,
            Some(text) => Some(parse_price(text)?),
        };
        let rating = match self.text(ProductField::Rating)? {
            None => None,
            Some(text) => Some(
                text.parse::<f32>()
                    .ok()
                    .filter(|rating| (0.0..=5.0).contains(rating))
                    .ok_or_else(|| format!("rating '{text}' is not a number from 0 to 5"))?,
            ),
        };
        let review_count = match self.text(ProductField::ReviewCount)? {
            None => 0,
            // Exports often write counts as floats ("12.0").
            Some(text) => text
                .parse::<u32>()
                .ok()
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .filter(|count| count.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(count))
                        .map(|count| count as u32)
                })
                .ok_or_else(|| format!("review_count '{text}' is not a whole number"))?,
        };
        let features = self.list(ProductField::Features, &["|"]);
        for feature in &features {
            if let Some((key, value)) = feature.split_once(':')
                && !key.trim().is_empty()
                && !value.trim().is_empty()
            {
                self.attributes
                    .entry(key.trim().to_lowercase())
                    .or_insert_with(|| value.trim().to_owned());
            }
        }
        Ok(Product {
            description: self.text(ProductField::Description)?.map(str::to_owned),
            class: self.list(ProductField::Class, &["|"]),
            category_path: self.list(ProductField::Category, &[" / ", ">"]),
            id,
            name,
            price,
            rating,
            review_count,
            features,
            attributes: self.attributes,
        })
    }
}

/// A price as exports write it: `19.99`, `$19.99`, `1,299.00`.
fn parse_price(text: &str) -> Result<f64, String> {
    let digits: String = text
        .trim_start_matches(['$', '€', '£'])
        .chars()
        .filter(|&character| character != ',')
        .collect();
    digits
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|price| price.is_finite() && *price >= 0.0)
        .ok_or_else(|| format!("price '{text}' is not a non-negative number"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn read(format: CatalogFormat, mapping: &[&str], body: &str) -> ProductFile {
        let mapping = FieldMapping::parse(mapping.iter().copied()).unwrap();
        read_products(body.as_bytes(), format, &mapping, "test").unwrap()
    }

    #[test]
    fn a_generic_csv_maps_declared_columns_and_keeps_the_rest_as_attributes() {
        let file = read(
            CatalogFormat::Csv,
            &["id=sku", "name=title", "category=path"],
            "sku,title,price,rating,path,color,description\n\
             a1,Oak desk,\"$1,299.00\",4.5,Furniture > Office > Desks,brown,Solid oak.\n\
             a2,Pine shelf,,,,,\n",
        );
        assert!(file.rejected.is_empty(), "{:?}", file.rejected);
        let desk = &file.products[0];
        assert_eq!((desk.id.as_str(), desk.name.as_str()), ("a1", "Oak desk"));
        assert_eq!(desk.price, Some(1299.0));
        assert_eq!(desk.rating, Some(4.5));
        assert_eq!(desk.category_path, ["Furniture", "Office", "Desks"]);
        assert_eq!(desk.description.as_deref(), Some("Solid oak."));
        assert_eq!(desk.attributes.get("color").map(String::as_str), Some("brown"));
        let shelf = &file.products[1];
        assert_eq!((shelf.price, shelf.rating), (None, None));
        assert!(shelf.attributes.is_empty());
    }

    #[test]
    fn a_tab_separated_header_is_read_as_tabs() {
        let file = read(CatalogFormat::Csv, &[], "id\tname\tprice\n1\tlamp, brass\t20\n");
        assert_eq!(file.products[0].name, "lamp, brass");
        assert_eq!(file.products[0].price, Some(20.0));
    }

    #[test]
    fn bad_rows_are_reported_by_line_with_the_reason() {
        let file = read(
            CatalogFormat::Csv,
            &[],
            "id,name,price,rating,review_count\n\
             1,chair,10,4,3\n\
             ,no id,1,1,1\n\
             3,,1,1,1\n\
             4,bad price,cheap,1,1\n\
             5,bad rating,1,9,1\n\
             6,bad count,1,1,-2\n\
             1,again,1,1,1\n\
             8,short\n\
             9,fine,2.5,0,12.0\n",
        );
        let lines: Vec<u64> = file.rejected.iter().map(|row| row.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9]);
        let reasons: Vec<&str> = file.rejected.iter().map(|row| row.reason.as_str()).collect();
        assert_eq!(reasons[0], "empty id");
        assert_eq!(reasons[1], "empty name for product '3'");
        assert_eq!(reasons[2], "price 'cheap' is not a non-negative number");
        assert_eq!(reasons[3], "rating '9' is not a number from 0 to 5");
        assert_eq!(reasons[4], "review_count '-2' is not a whole number");
        assert_eq!(reasons[5], "duplicate id '1' (first on line 2)");
        assert_eq!(reasons[6], "expected 5 comma-separated fields, found 2");
        let ids: Vec<&str> = file.products.iter().map(|product| product.id.as_str()).collect();
        assert_eq!(ids, ["1", "9"]);
        assert_eq!(file.products[1].review_count, 12);
    }

    #[test]
    fn a_mapped_column_missing_from_the_header_fails_the_file() {
        let mapping = FieldMapping::parse(["name=title"]).unwrap();
        let error = read_products("id,name\n1,a\n".as_bytes(), CatalogFormat::Csv, &mapping, "x.csv").unwrap_err();
        assert_eq!(error.code(), "catalog_format_invalid");
        assert!(error.to_string().contains("'title'"), "{error}");
        let error = read_products(
            "sku,name\n1,a\n".as_bytes(),
            CatalogFormat::Csv,
            &FieldMapping::default(),
            "x",
        )
        .unwrap_err();
        assert!(error.to_string().contains("map one with field=column"), "{error}");
    }

    #[test]
    fn mappings_are_checked() {
        for bad in ["name", "name=", "colour=title"] {
            assert_eq!(
                FieldMapping::parse([bad]).unwrap_err().code(),
                "invalid_request",
                "{bad}"
            );
        }
        assert!(FieldMapping::parse(["name=a", "name=b"]).is_err());
    }

    #[test]
    fn json_lines_take_lists_numbers_and_nested_attributes() {
        let file = read(
            CatalogFormat::Jsonl,
            &["id=sku"],
            "{\"sku\": 17, \"name\": \"Rug\", \"price\": 149.5, \"class\": [\"Rugs\"], \"category\": \"Decor / Rugs\", \
             \"features\": [\"material:wool\", \"hand made\"], \"attributes\": {\"size\": \"5x8\"}, \"in_stock\": true}\n\
             \n\
             not json\n\
             [1, 2]\n\
             {\"sku\": \"18\", \"name\": \"Mat\", \"price\": -1}\n\
             {\"sku\": \"19\", \"name\": \"Mat\", \"colour\": {\"r\": 1}}\n",
        );
        let rug = &file.products[0];
        assert_eq!(rug.id, "17");
        assert_eq!(rug.price, Some(149.5));
        assert_eq!(rug.class, ["Rugs"]);
        assert_eq!(rug.category_path, ["Decor", "Rugs"]);
        assert_eq!(rug.features, ["material:wool", "hand made"]);
        let attributes: Vec<(&str, &str)> = rug
            .attributes
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            attributes,
            [("in_stock", "true"), ("material", "wool"), ("size", "5x8")]
        );
        let lines: Vec<u64> = file.rejected.iter().map(|row| row.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        assert!(file.rejected[0].reason.starts_with("invalid JSON"));
        assert_eq!(file.rejected[1].reason, "the line is not a JSON object");
    }

    #[test]
    fn wands_reads_its_own_columns_and_features() {
        let file = read(
            CatalogFormat::Wands,
            &[],
            "product_id\tproduct_name\tproduct_class\tcategory_hierarchy\tproduct_features\taverage_rating\treview_count\n\
             5\tsofa\tSofas\tFurniture / Sofas\tcolor:grey|seats:3\t4.0\t15.0\n",
        );
        let sofa = &file.products[0];
        assert_eq!(sofa.attributes.get("color").map(String::as_str), Some("grey"));
        assert_eq!((sofa.rating, sofa.review_count), (Some(4.0), 15));
        assert!(
            read_products(
                "id\tname\n".as_bytes(),
                CatalogFormat::Wands,
                &FieldMapping::default(),
                "w"
            )
            .is_err()
        );
    }

    #[test]
    fn formats_are_detected_from_the_first_line() {
        assert_eq!(CatalogFormat::detect(b"{\"id\": 1}\n"), CatalogFormat::Jsonl);
        assert_eq!(
            CatalogFormat::detect(b"product_id\tproduct_name\tproduct_class\n"),
            CatalogFormat::Wands
        );
        assert_eq!(CatalogFormat::detect(b"\xEF\xBB\xBFid,name\n"), CatalogFormat::Csv);
        assert_eq!(CatalogFormat::detect(b""), CatalogFormat::Csv);
    }

    proptest! {
        #[test]
        fn any_bytes_read_without_failing_the_file(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut csv = b"id,name,price\n".to_vec();
            csv.extend_from_slice(&body);
            let file = read_products(csv.as_slice(), CatalogFormat::Csv, &FieldMapping::default(), "p").unwrap();
            for product in &file.products {
                prop_assert!(!product.id.is_empty() && !product.name.is_empty());
                prop_assert!(product.price.is_none_or(|price| price >= 0.0));
            }
            read_products(body.as_slice(), CatalogFormat::Jsonl, &FieldMapping::default(), "p").unwrap();
        }
    }
}
