//! The events a domain owns: the [`Event`] trait and the [`events!`] macro that implements it.

/// A domain's event enum: one variant per event type the domain owns.
///
/// Write it with [`events!`](crate::events); the macro derives the type names, keys,
/// JSON (de)coding of `data` and the JSON Schemas from the payload structs.
pub trait Event: Sized + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static {
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
    /// The payload version of this event's type ([`Payload::VERSION`]).
    fn version(&self) -> u32;
    /// Decodes `data` of the named type.
    fn from_data(type_name: &str, data: &[u8]) -> Result<Self, DataError>;
    /// `data` of the named type stored at `version`, upcast to the type's current version;
    /// `None` when it is current already.
    fn upgrade(type_name: &str, version: u32, data: &[u8]) -> Result<Option<Vec<u8>>, DataError>;
    /// Decodes `data` of the named type stored at `version`, upcast first when older.
    fn decode_stored(type_name: &str, version: u32, data: &[u8]) -> Result<Self, DataError> {
        let upgraded = Self::upgrade(type_name, version, data)?;
        Self::from_data(type_name, upgraded.as_deref().unwrap_or(data))
    }
    /// Every type this enum holds, with its JSON Schema.
    fn types() -> Vec<EventType>;
    /// Its types clients may POST (marked `from clients` in [`events!`](crate::events)).
    fn ingress() -> Vec<&'static str> {
        Self::types()
            .into_iter()
            .filter(|event_type| event_type.ingress)
            .map(|event_type| event_type.name)
            .collect()
    }
}

/// One event type's payload struct: its full type name.
///
/// [`events!`](crate::events) implements it for every payload it lists, so another
/// domain can consume the type by naming the struct in [`inputs!`](crate::inputs).
pub trait Payload: serde::Serialize + serde::de::DeserializeOwned + Send + 'static {
    /// Full type name, for example `orders.OrderPlaced`.
    const TYPE: &'static str;
    /// The version of the payload's layout: 1 until it changes in a way stored events of
    /// the earlier layout would not decode into (then `version N upcast f` in
    /// [`events!`](crate::events)).
    const VERSION: u32 = 1;
    /// Turns `data` of version `from` (older than [`Payload::VERSION`]) into the current
    /// layout.
    fn upcast(from: u32, data: serde_json::Value) -> Result<serde_json::Value, String> {
        let _ = data;
        Err(format!(
            "{} is at version {}, and has no upcast from version {from}",
            Self::TYPE,
            Self::VERSION
        ))
    }
}

/// Stored `data` of a version to the type's current layout (`None`: already current).
pub type Upgrade = fn(u32, &[u8]) -> Result<Option<Vec<u8>>, DataError>;

/// The CloudEvents extension attribute holding a stored event's payload version; absent
/// means version 1.
pub const VERSION_ATTRIBUTE: &str = "heraldversion";

/// Marks `envelope` as holding `data` of payload version `version` (version 1 is
/// unmarked, as every event before versions was), replacing any mark it had.
pub fn mark_version(envelope: &mut crate::Envelope, version: u32) {
    envelope
        .extensions
        .retain(|(key, _)| key != VERSION_ATTRIBUTE);
    if version > 1 {
        envelope
            .extensions
            .push((VERSION_ATTRIBUTE.to_owned(), version.to_string()));
    }
}

/// The payload version `envelope` was stored at.
pub fn stored_version(envelope: &crate::Envelope) -> u32 {
    envelope
        .extensions
        .iter()
        .find(|(key, _)| key == VERSION_ATTRIBUTE)
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(1)
}

/// `data` of `T` stored at `version`, upcast to `T::VERSION` (one step covers every older
/// version: the upcast is told where it starts); `None` when it is current.
pub fn upgrade<T: Payload>(version: u32, data: &[u8]) -> Result<Option<Vec<u8>>, DataError> {
    let invalid = |message: String| DataError::Invalid {
        type_name: T::TYPE.to_owned(),
        message,
    };
    if version > T::VERSION {
        // Written by a newer build: read as this layout it would be misread.
        return Err(invalid(format!(
            "stored at version {version}, newer than this build's {}; run the newer build",
            T::VERSION
        )));
    }
    if version == T::VERSION {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_slice(data).map_err(|error| invalid(error.to_string()))?;
    let upcast = T::upcast(version, value)
        .map_err(|error| invalid(format!("upcast from version {version}: {error}")))?;
    serde_json::to_vec(&upcast)
        .map(Some)
        .map_err(|error| invalid(error.to_string()))
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
    /// Whether clients may POST it.
    pub ingress: bool,
    /// Its payload's version ([`Payload::VERSION`]).
    pub version: u32,
    /// [`upgrade`] for it: stored `data` of a version to the current layout.
    pub upgrade: Upgrade,
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
    /// The type is not one of the input enum's.
    #[error("event type \"{type_name}\" is not an input of \"{input}\"")]
    NotAnInput {
        /// The name asked for.
        type_name: String,
        /// The input enum.
        input: &'static str,
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
/// The enum names its domain (`in "inventory"`, which is also the domain's `NAME`). Each
/// variant names a payload struct of the same name, either declared elsewhere with
/// [`#[payload]`](crate::payload) or given inline as `{ field: Type, ... }` (its doc
/// comment and field attributes kept, every field public); then the field holding the
/// entity key, and, for the types clients may POST, `from clients`. Each payload gets a `TYPE` constant with its full type
/// name and implements [`Payload`]. A domain that emits nothing (a read model) declares an
/// enum with no variants.
///
/// ```
/// /// A sku's stock grew.
/// #[herald_runtime::payload]
/// pub struct StockAdded { pub sku: String, pub quantity: u64 }
///
/// herald_runtime::events! {
///     /// What the inventory domain records.
///     pub enum InventoryEvent in "inventory" {
///         StockAdded keyed by sku from clients,
///         /// A sku's stock was counted again.
///         StockCounted { sku: String, #[schemars(range(min = 0))] quantity: u64 } keyed by sku,
///     }
/// }
/// let counted = StockCounted { sku: "a".into(), quantity: 3 };
/// use herald_runtime::Event;
/// assert_eq!(StockAdded::TYPE, "inventory.StockAdded");
/// assert_eq!(InventoryEvent::ingress(), ["inventory.StockAdded"]);
/// ```
#[macro_export]
macro_rules! events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident in $domain:literal {
            $(
                $(#[$vmeta:meta])*
                $variant:ident $({ $($fields:tt)* })? keyed by $key:ident $(from $who:ident)?
                    $(version $version:literal upcast $upcast:path)?
            ),* $(,)?
        }
    ) => {
        $( $crate::__payload_struct! { $(#[$vmeta])* $variant $({ $($fields)* })? } )*

        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name {
            $(
                // A variant's own attributes (its doc comment) go on it as well as on an
                // inline payload, so none is lost; other attributes fail to compile here,
                // visibly: put them on a `#[payload]` struct of its own.
                $(#[$vmeta])*
                #[doc = concat!("`", $domain, ".", stringify!($variant), "`")]
                $variant($variant),
            )*
        }

        $(
            impl $variant {
                /// Full CloudEvents type name of this event.
                pub const TYPE: &'static str = concat!($domain, ".", stringify!($variant));
            }

            impl $crate::Payload for $variant {
                const TYPE: &'static str = $variant::TYPE;
                $(
                    const VERSION: u32 = $version;
                    fn upcast(
                        from: u32,
                        data: $crate::__private::serde_json::Value,
                    ) -> ::core::result::Result<$crate::__private::serde_json::Value, ::std::string::String> {
                        $upcast(from, data)
                    }
                )?
            }

            impl ::core::convert::From<$variant> for $name {
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

            fn version(&self) -> u32 {
                match *self {
                    $( Self::$variant(_) => <$variant as $crate::Payload>::VERSION, )*
                }
            }

            // With no variants the match is empty and what follows it unreachable.
            #[allow(unreachable_code)]
            fn to_data(&self) -> ::std::vec::Vec<u8> {
                let encoded: ::core::result::Result<::std::vec::Vec<u8>, $crate::__private::serde_json::Error> = match *self {
                    $( Self::$variant(ref event) => $crate::__private::serde_json::to_vec(event), )*
                };
                // Payloads are plain derived structs with string keys: encoding cannot fail.
                encoded.expect("event payloads encode to JSON")
            }

            fn from_data(type_name: &str, data: &[u8]) -> ::core::result::Result<Self, $crate::DataError> {
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
                ::core::result::Result::Err($crate::DataError::UnknownType {
                    type_name: type_name.to_owned(),
                    domain: $domain,
                })
            }

            fn upgrade(
                type_name: &str,
                version: u32,
                data: &[u8],
            ) -> ::core::result::Result<::core::option::Option<::std::vec::Vec<u8>>, $crate::DataError> {
                $(
                    if type_name == $variant::TYPE {
                        return $crate::event::upgrade::<$variant>(version, data);
                    }
                )*
                let _ = (version, data);
                ::core::result::Result::Ok(::core::option::Option::None)
            }

            fn types() -> ::std::vec::Vec<$crate::EventType> {
                ::std::vec![
                    $(
                        $crate::EventType {
                            name: $variant::TYPE,
                            key_field: stringify!($key),
                            schema: $crate::schema_of::<$variant>(),
                            ingress: $crate::__from!($($who)?),
                            version: <$variant as $crate::Payload>::VERSION,
                            upgrade: $crate::event::upgrade::<$variant>,
                        },
                    )*
                ]
            }
        }
    };
}

/// Whether an [`events!`] variant is marked `from clients`.
#[doc(hidden)]
#[macro_export]
macro_rules! __from {
    () => {
        false
    };
    (clients) => {
        true
    };
    ($other:ident) => {
        ::std::compile_error!(concat!(
            "events!: `from ",
            stringify!($other),
            "`: only `from clients` is known (an ingress type)"
        ))
    };
}

/// The payload struct of an [`events!`] variant declared with its fields inline (a
/// [`#[payload]`](crate::payload) struct, every field public); nothing for a variant naming
/// a struct declared elsewhere.
#[doc(hidden)]
#[macro_export]
macro_rules! __payload_struct {
    ($(#[$meta:meta])* $variant:ident) => {};
    (
        $(#[$meta:meta])*
        $variant:ident { $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[$crate::payload]
        pub struct $variant {
            $(
                $(#[$fmeta])*
                #[allow(missing_docs)] // an inline field may go without a doc comment
                pub $field: $ty,
            )*
        }
    };
}
