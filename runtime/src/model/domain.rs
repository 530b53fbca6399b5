//! Domains: point sets with named tags, and their coordinate variables.

use std::collections::BTreeMap;
use std::sync::Arc;

use crux_ir::graph::{DType, Shape, Tensor};

use crate::error::{Error, Result};
use crate::model::expr::{Expr, Kind};
use crate::model::ids::DomainId;

/// The most points one tag may hold: a guard against a mesh size typo
/// allocating gigabytes.
const MAX_POINTS: usize = 50_000_000;

/// A set of collocation points, grouped by tags (`interior`, `boundary`, ...).
#[derive(Clone)]
pub struct Domain(Arc<DomainState>);

struct DomainState {
    id: DomainId,
    dim: usize,
    description: String,
    /// Points of each tag, `(P, dim)`.
    tags: BTreeMap<String, Arc<Tensor>>,
}

fn finite(what: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            what: what.into(),
            value: v,
        })
    }
}

/// `n = max(round(|x1 − x0| / h), 1)` segments and the numpy-linspace nodes.
fn linspace(x0: f64, x1: f64, h: f64, axis: &str) -> Result<Vec<f64>> {
    finite(&format!("the {axis} start"), x0)?;
    finite(&format!("the {axis} end"), x1)?;
    finite("the mesh size", h)?;
    if h <= 0.0 {
        return Err(Error::InvalidDomain {
            parameter: "mesh_size",
            reason: format!("mesh_size must be > 0, got {h}"),
        });
    }
    if x0 == x1 {
        return Err(Error::InvalidDomain {
            parameter: "range",
            reason: format!("the {axis} range {x0}..{x1} is empty; give two different ends"),
        });
    }
    let segs = ((x1 - x0).abs() / h).round();
    // `segs` is finite: both ends and the (positive) mesh size are.
    if segs >= MAX_POINTS as f64 {
        return Err(Error::InvalidDomain {
            parameter: "mesh_size",
            reason: format!(
                "mesh_size {h} over {x0}..{x1} gives {segs} segments, more than {MAX_POINTS}; use a larger mesh size"
            ),
        });
    }
    let n = (segs as usize).max(1);
    let step = (x1 - x0) / n as f64;
    let mut v: Vec<f64> = (0..=n).map(|i| x0 + step * i as f64).collect();
    v[n] = x1;
    Ok(v)
}

impl Domain {
    fn build(dim: usize, description: String, tags: BTreeMap<String, Vec<f64>>) -> Result<Domain> {
        let mut t = BTreeMap::new();
        for (name, pts) in tags {
            let p = pts.len() / dim;
            t.insert(
                name,
                Arc::new(Tensor::new(DType::F64, Shape(vec![p, dim]), pts)?),
            );
        }
        Ok(Domain(Arc::new(DomainState {
            id: DomainId::fresh(),
            dim,
            description,
            tags: t,
        })))
    }

    /// The interval `[x0, x1]` split into `n = max(round(|x1 − x0| / mesh_size), 1)`
    /// segments. Tags: `interior` (all `n + 1` nodes, endpoints included, in
    /// order), `boundary` (both ends), `left`, `right`.
    pub fn line(x0: f64, x1: f64, mesh_size: f64) -> Result<Domain> {
        let xs = linspace(x0, x1, mesh_size, "x")?;
        let mut tags = BTreeMap::new();
        tags.insert("boundary".to_string(), vec![xs[0], xs[xs.len() - 1]]);
        tags.insert("left".to_string(), vec![xs[0]]);
        tags.insert("right".to_string(), vec![xs[xs.len() - 1]]);
        tags.insert("interior".to_string(), xs);
        Domain::build(1, format!("line [{x0}, {x1}], mesh size {mesh_size}"), tags)
    }

    /// The rectangle `[x0, x1] × [y0, y1]` as a tensor grid with spacing
    /// about `mesh_size` in each direction. Points are ordered row by row
    /// (`x` fastest). Tags: `interior` (every grid node, edges included, as
    /// for [`Domain::line`]), `boundary` (nodes on the edges), `left`,
    /// `right`, `bottom`, `top`.
    pub fn rectangle(x: (f64, f64), y: (f64, f64), mesh_size: f64) -> Result<Domain> {
        let xs = linspace(x.0, x.1, mesh_size, "x")?;
        let ys = linspace(y.0, y.1, mesh_size, "y")?;
        if xs.len().saturating_mul(ys.len()) > MAX_POINTS {
            return Err(Error::InvalidDomain {
                parameter: "mesh_size",
                reason: format!(
                    "{} x {} grid nodes are more than {MAX_POINTS}; use a larger mesh size",
                    xs.len(),
                    ys.len()
                ),
            });
        }
        let (nx, ny) = (xs.len() - 1, ys.len() - 1);
        let mut tags: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (j, &yv) in ys.iter().enumerate() {
            for (i, &xv) in xs.iter().enumerate() {
                let mut put = |t: &str| tags.entry(t.to_string()).or_default().extend([xv, yv]);
                put("interior");
                if i == 0 || i == nx || j == 0 || j == ny {
                    put("boundary");
                }
                if i == 0 {
                    put("left");
                }
                if i == nx {
                    put("right");
                }
                if j == 0 {
                    put("bottom");
                }
                if j == ny {
                    put("top");
                }
            }
        }
        Domain::build(
            2,
            format!(
                "rectangle [{}, {}] x [{}, {}], mesh size {mesh_size}",
                x.0, x.1, y.0, y.1
            ),
            tags,
        )
    }

    /// Spatial dimension.
    pub fn dim(&self) -> usize {
        self.0.dim
    }

    /// Identity of this domain.
    pub fn id(&self) -> DomainId {
        self.0.id
    }

    /// The tag names.
    pub fn tags(&self) -> Vec<&str> {
        self.0.tags.keys().map(String::as_str).collect()
    }

    fn tag(&self, tag: &str) -> Result<&Arc<Tensor>> {
        self.0.tags.get(tag).ok_or_else(|| Error::UnknownTag {
            tag: tag.to_string(),
            available: self.tags().join(", "),
        })
    }

    pub(crate) fn points_tensor(&self, tag: &str) -> Result<&Arc<Tensor>> {
        self.tag(tag)
    }

    /// The points of a tag as a `(P, dim)` array.
    pub fn points(&self, tag: &str) -> Result<ndarray::Array2<f64>> {
        let t = self.tag(tag)?;
        Ok(
            ndarray::Array2::from_shape_vec((t.shape.0[0], t.shape.0[1]), t.data.clone())
                .expect("a points tensor is built with rows x dims entries for its shape"),
        )
    }

    /// The coordinate variable of a 1-D domain over the points of `tag`, shape `(P, 1)`.
    pub fn variable(&self, tag: &str) -> Result<Expr> {
        if self.0.dim != 1 {
            return Err(Error::InvalidArgument {
                what: "variable".into(),
                reason: format!(
                    "the domain is {}-D; use `variables(tag)` to get one variable per axis",
                    self.0.dim
                ),
            });
        }
        Ok(self.variables(tag)?.remove(0))
    }

    /// One coordinate variable per axis over the points of `tag`, each `(P, 1)`.
    pub fn variables(&self, tag: &str) -> Result<Vec<Expr>> {
        let t = self.tag(tag)?;
        let p = t.shape.0[0];
        Ok((0..self.0.dim)
            .map(|axis| {
                Expr::make(
                    Kind::Coord {
                        domain: self.clone(),
                        tag: tag.to_string(),
                        axis,
                    },
                    Shape(vec![p, 1]),
                    Some(self.0.id),
                )
            })
            .collect())
    }
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Domain({})", self.0.description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_tags_follow_the_reference_library() {
        let d = Domain::line(0.0, 1.0, 0.01).unwrap();
        let p = d.points("interior").unwrap();
        assert_eq!(p.shape(), &[101, 1]);
        assert_eq!(p[[0, 0]], 0.0);
        assert_eq!(p[[100, 0]], 1.0);
        assert!((p[[37, 0]] - 0.37).abs() < 1e-15);
        assert_eq!(
            d.points("boundary").unwrap().column(0).to_vec(),
            vec![0.0, 1.0]
        );
        assert_eq!(d.points("left").unwrap()[[0, 0]], 0.0);
        assert_eq!(d.points("right").unwrap()[[0, 0]], 1.0);
        assert_eq!(
            Domain::line(0.0, 1.0, 0.05)
                .unwrap()
                .points("interior")
                .unwrap()
                .nrows(),
            21
        );
        // A mesh size larger than the interval still gives one segment.
        assert_eq!(
            Domain::line(0.0, 1.0, 5.0)
                .unwrap()
                .points("interior")
                .unwrap()
                .nrows(),
            2
        );
    }

    #[test]
    fn rectangle_tags() {
        let d = Domain::rectangle((0.0, 1.0), (0.0, 2.0), 0.5).unwrap();
        assert_eq!(d.points("interior").unwrap().shape(), &[3 * 5, 2]);
        // 3 x 5 nodes, of which the 1 x 3 strictly inside are not on the boundary.
        assert_eq!(d.points("boundary").unwrap().nrows(), 15 - 3);
        assert_eq!(d.points("top").unwrap().nrows(), 3);
        assert!(d
            .points("left")
            .unwrap()
            .column(0)
            .iter()
            .all(|&x| x == 0.0));
        assert_eq!(d.variables("interior").unwrap().len(), 2);
        assert!(d.variable("interior").is_err());
    }

    #[test]
    fn bad_domains_are_errors() {
        assert!(matches!(
            Domain::line(0.0, 1.0, 0.0),
            Err(Error::InvalidDomain { .. })
        ));
        assert!(matches!(
            Domain::line(0.0, 1.0, -1.0),
            Err(Error::InvalidDomain { .. })
        ));
        assert!(matches!(
            Domain::line(0.0, f64::NAN, 0.1),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            Domain::line(1.0, 1.0, 0.1),
            Err(Error::InvalidDomain { .. })
        ));
        assert!(matches!(
            Domain::line(0.0, 1.0, 1e-12),
            Err(Error::InvalidDomain { .. })
        ));
        let d = Domain::line(0.0, 1.0, 0.1).unwrap();
        let e = d.variable("inside").unwrap_err();
        assert!(
            e.to_string().contains("boundary, interior, left, right"),
            "{e}"
        );
    }
}
