//! Herald's attribute macros, re-exported by `herald_runtime`: [`macro@payload`].
//!
//! Written on `proc_macro` alone (no `syn`): the attribute only puts derives in front of
//! the item, so it needs no parsing, and the workspace builds no parser for it.

use proc_macro::TokenStream;

/// What `#[payload]` puts before the item: the derives every event payload needs, and
/// `deny_unknown_fields` so a misspelt field is refused (422), not dropped.
const DERIVES: &str = "\
    #[derive(\
        ::std::fmt::Debug, \
        ::std::clone::Clone, \
        ::std::cmp::PartialEq, \
        ::herald_runtime::__private::serde::Serialize, \
        ::herald_runtime::__private::serde::Deserialize, \
        ::herald_runtime::__private::schemars::JsonSchema\
    )] \
    #[serde(crate = \"::herald_runtime::__private::serde\", deny_unknown_fields)] \
    #[schemars(crate = \"::herald_runtime::__private::schemars\")]";

/// Marks a struct as an event payload: derives `Debug`, `Clone`, `PartialEq`, serde's
/// `Serialize` and `Deserialize` (unknown fields refused) and `JsonSchema`, through
/// `herald_runtime`, so the crate needs no serde or schemars of its own for payloads.
/// Field attributes of both (`#[serde(default)]`, `#[schemars(range(min = 1))]`) work.
#[proc_macro_attribute]
pub fn payload(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return "::std::compile_error!(\"#[payload] takes no arguments\");"
            .parse()
            .expect("a compile_error! call parses");
    }
    let mut out: TokenStream = DERIVES.parse().expect("the derives parse");
    out.extend(item);
    out
}
