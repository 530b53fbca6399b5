//! Process-unique identities of domains, models, parameters and noise terms.

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(1);

fn fresh() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) u64);

        impl $name {
            pub(crate) fn fresh() -> Self {
                $name(fresh())
            }
        }
    };
}

id_type!(
    /// Identity of a [`crate::Domain`].
    DomainId
);
id_type!(
    /// Identity of a model (a [`crate::Param`] or a [`crate::Net`]).
    ModelId
);
id_type!(
    /// Identity of one parameter tensor (a leaf of a model).
    LeafId
);
id_type!(
    /// Identity of one noise term.
    NoiseId
);
