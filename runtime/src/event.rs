//! The events a domain owns: the [`Event`] trait and the [`events!`] macro that implements it.

/// A domain's event enum: one variant per event type the domain owns.
///
/// Write it with [`events!`](crate::events); the macro derives the type names, keys,
/// JSON (de)coding of `data` and the JSON Schemas from the payload structs.
pub trait Event: Sized + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The owning domain's name; type names are `<DOMAIN>.<Variant>`.
    const DOMAIN: &'static str;
    /// Full type name of this event, for example `orders.OrderPlaced`.
    fn type_name(&self) -> &'static str;
    /// The entity key this event is about; it becomes the CloudEvents `subject`.
    fn subject(&self) -> &str;
    /// The `data` field that holds the key, named in errors when `subject` disagrees.
    fn key_field(&self) -> &'static str;
    /// The JSON text of `data`.
    fn to_data(&self) -> Vec<u8>;
    /// Decodes `data` of the named type.
    fn from_data(type_name: &str, data: &[u8]) -> Result<Self, DataError>;
    /// Every type this enum holds, with its JSON Schema.
    fn types() -> Vec<EventType>;
}

/// One event type: its name, key field and the JSON Schema of its `data`.
#[derive(Debug, Clone)]
pub struct EventType {
    /// Full type name, `<domain>.<Name>`.
    pub name: &'static str,
    /// The `data` field holding the entity key.
    pub key_field: &'static str,
    /// JSON Schema (draft 2020-12) of `data`.
    pub schema: serde_json::Value,
}

/// `data` that does not decode into the named type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The type name is not one of the domain's.
    #[error("unknown event type \"{type_name}\" for domain \"{domain}\"")]
    UnknownType {
        /// The name asked for.
        type_name: String,
        /// The domain asked.
        domain: &'static str,
    },
    /// The JSON does not fit the type.
    #[error("data of \"{type_name}\" does not decode: {message}")]
    Invalid {
        /// The type.
        type_name: String,
        /// serde_json's reason, with line and column.
        message: String,
    },
}

/// Declares a domain's event enum and implements [`Event`] for it.
///
/// A domain that emits nothing (a read model) declares an enum with no variants.
/// Each variant names a payload struct of the same name (deriving `Serialize`, `Deserialize`,
/// `JsonSchema`, `Debug`, `Clone`, `PartialEq`) and the field holding the entity key.
/// Each payload gets a `TYPE` constant with its full type name.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use schemars::JsonSchema;
///
/// /// A sku's stock grew.
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
/// pub struct StockAdded { pub sku: String, pub quantity: u64 }
///
/// herald_runtime::events! {
///     /// What the inventory domain records.
///     pub enum InventoryEvent in "inventory" {
///         StockAdded keyed by sku,
///     }
/// }
/// assert_eq!(StockAdded::TYPE, "inventory.StockAdded");
/// ```
#[macro_export]
macro_rules! events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident in $domain:literal {
            $( $variant:ident keyed by $key:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name {
            $(
                #[doc = concat!("`", $domain, ".", stringify!($variant), "`")]
                $variant($variant),
            )*
        }

        $(
            impl $variant {
                /// Full CloudEvents type name of this event.
                pub const TYPE: &'static str = concat!($domain, ".", stringify!($variant));
            }

            impl From<$variant> for $name {
                fn from(event: $variant) -> Self {
                    Self::$variant(event)
                }
            }
        )*

        impl $crate::Event for $name {
            const DOMAIN: &'static str = $domain;

            fn type_name(&self) -> &'static str {
                match *self {
                    $( Self::$variant(_) => $variant::TYPE, )*
                }
            }

            fn subject(&self) -> &str {
                match *self {
                    $( Self::$variant(ref event) => &event.$key, )*
                }
            }

            fn key_field(&self) -> &'static str {
                match *self {
                    $( Self::$variant(_) => stringify!($key), )*
                }
            }

            // With no variants the match is empty and what follows it unreachable.
            #[allow(unreachable_code)]
            fn to_data(&self) -> Vec<u8> {
                let encoded: Result<Vec<u8>, $crate::__private::serde_json::Error> = match *self {
                    $( Self::$variant(ref event) => $crate::__private::serde_json::to_vec(event), )*
                };
                // Payloads are plain derived structs with string keys: encoding cannot fail.
                encoded.expect("event payloads encode to JSON")
            }

            fn from_data(type_name: &str, data: &[u8]) -> Result<Self, $crate::DataError> {
                $(
                    if type_name == $variant::TYPE {
                        return $crate::__private::serde_json::from_slice::<$variant>(data)
                            .map(Self::$variant)
                            .map_err(|error| $crate::DataError::Invalid {
                                type_name: type_name.to_owned(),
                                message: error.to_string(),
                            });
                    }
                )*
                Err($crate::DataError::UnknownType {
                    type_name: type_name.to_owned(),
                    domain: $domain,
                })
            }

            fn types() -> Vec<$crate::EventType> {
                vec![
                    $(
                        $crate::EventType {
                            name: $variant::TYPE,
                            key_field: stringify!($key),
                            schema: $crate::__private::serde_json::to_value(
                                $crate::__private::schemars::schema_for!($variant),
                            )
                            .unwrap_or_default(),
                        },
                    )*
                ]
            }
        }
    };
}
