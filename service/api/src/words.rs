//! Enums whose wire form is one word per variant (states, kinds, roles):
//! declared once by [`words!`], which gives the enum (serde and the
//! OpenAPI document use the words), `ALL`, `as_str`, `parse` and `Display` —
//! the store keeps the same words in its columns.

/// Declare a word enum: `pub enum Name { Variant = "word", … }`, variants
/// in their order (derived `Ord` follows it). The word is the variant's
/// name in snake_case, which serde and the OpenAPI document use
/// (`tests::words_are_what_serde_writes` holds every enum to it).
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The variant's word, as on the wire and in the store.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The variant a word names.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    /// Each variant's word is what serde writes and reads for it.
    fn holds<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Copy>(
        all: &[T],
        word: fn(T) -> &'static str,
    ) {
        for &v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), word(v), "{v:?}");
            assert_eq!(serde_json::from_value::<T>(word(v).into()).unwrap(), v);
        }
    }

    #[test]
    fn words_are_what_serde_writes() {
        use crate::catalog::*;
        use crate::fabric::*;
        use crate::identity::*;
        use crate::machines::*;
        use crate::nodes::*;
        use crate::ops::*;
        holds(DiskFormat::ALL, DiskFormat::as_str);
        holds(ImageStatus::ALL, ImageStatus::as_str);
        holds(FabricKind::ALL, FabricKind::as_str);
        holds(SwitchPortState::ALL, SwitchPortState::as_str);
        holds(Role::ALL, Role::as_str);
        holds(GroupPolicy::ALL, GroupPolicy::as_str);
        holds(Strategy::ALL, Strategy::as_str);
        holds(NodeStatus::ALL, NodeStatus::as_str);
        holds(BmcDriver::ALL, BmcDriver::as_str);
        holds(ProvisionState::ALL, ProvisionState::as_str);
        holds(PowerAction::ALL, PowerAction::as_str);
        holds(OperationState::ALL, OperationState::as_str);
        assert_eq!(ProvisionState::parse("inspect_wait"), Some(ProvisionState::InspectWait));
        assert_eq!(ProvisionState::parse("asleep"), None);
        assert!(Role::Reader < Role::Member && Role::Member < Role::Admin, "ordered as declared");
    }
}
