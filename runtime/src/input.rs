//! What a domain consumes: the [`Input`] trait and the [`inputs!`] macro that implements it.
//!
//! A domain names the other domains' payload types it consumes as one enum; the runtime
//! decodes each input into it once, and `Domain::handle` matches on it. The subscriptions
//! are that enum's types, so a declared input the handler does not match is a compile error
//! (a non-exhaustive `match`), never an event dropped in silence.

use std::marker::PhantomData;

use crate::event::{DataError, Payload};

/// A domain's input enum: one variant per consumed event type of another domain.
///
/// Write it with [`inputs!`](crate::inputs).
pub trait Input: Sized + Send + 'static {
    /// Every consumed type, by full type name: the domain's subscriptions.
    const TYPES: &'static [&'static str];
    /// The full type name of this input.
    fn type_name(&self) -> &'static str;
    /// Decodes `data` of the named type.
    fn decode(type_name: &str, data: &[u8]) -> Result<Self, DataError>;
    /// `data` of the named type stored at `version`, upcast to its current version; `None`
    /// when it is current (or only its type is consumed).
    fn upgrade(type_name: &str, version: u32, data: &[u8]) -> Result<Option<Vec<u8>>, DataError>;
    /// Decodes `data` of the named type stored at `version`, upcast first when older.
    fn decode_stored(type_name: &str, version: u32, data: &[u8]) -> Result<Self, DataError> {
        let upgraded = Self::upgrade(type_name, version, data)?;
        Self::decode(type_name, upgraded.as_deref().unwrap_or(data))
    }
}

/// What an [`inputs!`] variant may hold: a payload type, or [`Seen`] of one.
pub trait Consumed: serde::de::DeserializeOwned + Send + 'static {
    /// The full type name it is consumed under.
    const TYPE: &'static str;
    /// Stored `data` of `version` in the current layout ([`crate::event::upgrade`]).
    fn upgrade(version: u32, data: &[u8]) -> Result<Option<Vec<u8>>, DataError>;
}

impl<T: Payload> Consumed for T {
    const TYPE: &'static str = T::TYPE;
    fn upgrade(version: u32, data: &[u8]) -> Result<Option<Vec<u8>>, DataError> {
        crate::event::upgrade::<T>(version, data)
    }
}

/// An input consumed for its type alone: its `data` is checked to be JSON but not decoded,
/// for a domain that only counts events of a type (no strings built, no field that could
/// fail to decode).
pub struct Seen<T>(PhantomData<fn() -> T>);

impl<T: Payload> Consumed for Seen<T> {
    const TYPE: &'static str = T::TYPE;
    // Only the type is consumed: any version's data will do.
    fn upgrade(_: u32, _: &[u8]) -> Result<Option<Vec<u8>>, DataError> {
        Ok(None)
    }
}

impl<T> Seen<T> {
    /// An event of type `T` was seen.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Seen<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> PartialEq for Seen<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> std::fmt::Debug for Seen<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seen<{}>", std::any::type_name::<T>())
    }
}

impl<'de, T> serde::Deserialize<'de> for Seen<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(Self::new())
    }
}

/// The input of a domain that consumes nothing: it has no values, so its `handle` is
/// `match input {}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoInput {}

impl Input for NoInput {
    const TYPES: &'static [&'static str] = &[];

    fn type_name(&self) -> &'static str {
        match *self {}
    }

    fn decode(type_name: &str, _data: &[u8]) -> Result<Self, DataError> {
        Err(DataError::NotAnInput {
            type_name: type_name.to_owned(),
            input: "NoInput",
        })
    }

    fn upgrade(_: &str, _: u32, _: &[u8]) -> Result<Option<Vec<u8>>, DataError> {
        Ok(None)
    }
}

/// Declares a domain's input enum and implements [`Input`] for it.
///
/// Each variant is a payload type of another domain (declared with
/// [`events!`](crate::events)): `OrderPlaced` for a type of that name in scope, or
/// `Placed(orders::OrderPlaced)` to name it by path, or `Placed(Seen<OrderPlaced>)` to
/// consume it for its type alone, without decoding its `data` (see [`Seen`]).
///
/// ```
/// mod orders {
///     /// An order came in.
///     #[herald_runtime::payload]
///     pub struct OrderPlaced { pub order_id: String, pub customer: String }
///
///     herald_runtime::events! {
///         /// What orders records.
///         pub enum OrdersEvent in "orders" { OrderPlaced keyed by order_id from clients }
///     }
/// }
/// use orders::OrderPlaced;
///
/// herald_runtime::inputs! {
///     /// What loyalty consumes.
///     pub enum LoyaltyInput { OrderPlaced }
/// }
/// use herald_runtime::Input;
/// assert_eq!(LoyaltyInput::TYPES, ["orders.OrderPlaced"]);
/// let input = LoyaltyInput::decode("orders.OrderPlaced", br#"{"order_id":"o-1","customer":"c-1"}"#);
/// assert!(matches!(input, Ok(LoyaltyInput::OrderPlaced(placed)) if placed.customer == "c-1"));
/// ```
///
/// A declared input the handler does not match is a compile error (E0004, a `match` that is
/// not exhaustive), not an event dropped in silence:
///
/// ```compile_fail,E0004
/// use herald_runtime::prelude::*;
///
/// herald_runtime::events! {
///     /// Orders.
///     pub enum OrdersEvent in "orders" {
///         OrderPlaced { order_id: String } keyed by order_id from clients,
///         OrderCancelled { order_id: String } keyed by order_id from clients,
///     }
/// }
/// herald_runtime::events! {
///     /// Audit emits nothing.
///     pub enum AuditEvent in "audit" {}
/// }
/// herald_runtime::inputs! {
///     /// What audit consumes.
///     pub enum AuditInput { OrderPlaced, OrderCancelled }
/// }
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Audit;
///
/// impl Domain for Audit {
///     type Event = AuditEvent;
///     type Input = AuditInput;
///     type Entity = ();
///
///     fn handle(&mut self, input: AuditInput, _: &mut Outbox<AuditEvent>) -> Handled {
///         match input {
///             AuditInput::OrderPlaced(_) => Ok(()),
///             // `OrderCancelled` forgotten: does not compile.
///         }
///     }
///
///     fn apply(&mut self, event: &AuditEvent) {
///         match *event {}
///     }
///
///     fn entity(&self, _: &str) -> Option<()> {
///         None
///     }
/// }
/// ```
#[macro_export]
macro_rules! inputs {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $variant:ident $(($payload:ty))? ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name {
            $(
                #[doc = concat!("A `", stringify!($variant), "` consumed.")]
                $variant($crate::__payload!($variant $(, $payload)?)),
            )*
        }

        impl $crate::Input for $name {
            const TYPES: &'static [&'static str] = &[
                $( <$crate::__payload!($variant $(, $payload)?) as $crate::input::Consumed>::TYPE, )*
            ];

            fn type_name(&self) -> &'static str {
                match *self {
                    $(
                        Self::$variant(_) => {
                            <$crate::__payload!($variant $(, $payload)?) as $crate::input::Consumed>::TYPE
                        }
                    )*
                }
            }

            fn decode(type_name: &str, data: &[u8]) -> ::core::result::Result<Self, $crate::DataError> {
                $(
                    if type_name
                        == <$crate::__payload!($variant $(, $payload)?) as $crate::input::Consumed>::TYPE
                    {
                        return $crate::__private::serde_json::from_slice(data)
                            .map(Self::$variant)
                            .map_err(|error| $crate::DataError::Invalid {
                                type_name: type_name.to_owned(),
                                message: error.to_string(),
                            });
                    }
                )*
                let _ = data;
                ::core::result::Result::Err($crate::DataError::NotAnInput {
                    type_name: type_name.to_owned(),
                    input: stringify!($name),
                })
            }

            fn upgrade(
                type_name: &str,
                version: u32,
                data: &[u8],
            ) -> ::core::result::Result<::core::option::Option<::std::vec::Vec<u8>>, $crate::DataError> {
                $(
                    if type_name
                        == <$crate::__payload!($variant $(, $payload)?) as $crate::input::Consumed>::TYPE
                    {
                        return <$crate::__payload!($variant $(, $payload)?) as $crate::input::Consumed>::upgrade(version, data);
                    }
                )*
                let _ = (version, data);
                ::core::result::Result::Ok(::core::option::Option::None)
            }
        }
    };
}

/// The payload type of an [`inputs!`] variant: the one named, else the variant's own name.
#[doc(hidden)]
#[macro_export]
macro_rules! __payload {
    ($variant:ident) => {
        $variant
    };
    ($variant:ident, $payload:ty) => {
        $payload
    };
}
