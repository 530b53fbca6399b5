//! Staging: partial evaluation of everything that does not depend on a
//! runtime parameter.
//!
//! Points, observations and noise drawn once are data; any subgraph built
//! only from them (`sin(πx)`, the noisy target, a network's first-layer
//! input features...) is evaluated here, once, by the reference
//! interpreter, and replaced by a stored tensor — or by a splatted constant
//! when every element is equal. Only the *frontier* is materialised: the
//! parameter-independent nodes that parameter-dependent nodes (or outputs)
//! read. A broadcast on the frontier is kept and its (smaller) argument
//! materialised instead, so staging never blows a vector up into a matrix.

use std::collections::HashMap;

use crux_ir::graph::{eval_all, DType, Graph, GraphError, Node, NodeId, Op, Tensor};

/// What staging did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageReport {
    /// Parameter-independent nodes computed at compile time.
    pub folded_nodes: usize,
    /// Frontier tensors that became stored data.
    pub data_tensors: usize,
    /// Frontier tensors that became splatted constants.
    pub constants: usize,
}

/// Returns a graph computing the same outputs in which every
/// parameter-independent subgraph has been evaluated.
pub fn stage(graph: &Graph) -> Result<(Graph, StageReport), GraphError> {
    // Runtime data (minibatch weights) varies like a parameter: nothing
    // that reads it may be folded into a stored tensor.
    let leaves = graph.runtime_leaves();
    let varying = graph.depends_on(&leaves);
    let n = graph.len();
    let roots: Vec<NodeId> = graph.outputs().iter().map(|(_, o)| *o).collect();

    // Frontier: constant nodes read by varying nodes or used as outputs.
    let mut frontier = vec![false; n];
    let mark = |id: NodeId, frontier: &mut Vec<bool>| {
        let mut todo = vec![id];
        while let Some(mut cur) = todo.pop() {
            // Look through broadcasts: materialise the small argument.
            while let Op::Broadcast = graph.node(cur).op {
                cur = graph.node(cur).args[0];
            }
            let node = graph.node(cur);
            if node.op.is_leaf() {
                continue;
            }
            if node.dtype == DType::Bool {
                // Data is float: a comparison stays, its operands are staged.
                todo.extend(node.args.iter().copied());
            } else {
                frontier[cur.index()] = true;
            }
        }
    };
    for (i, node) in graph.nodes().iter().enumerate() {
        if varying[i] {
            for a in &node.args {
                if !varying[a.index()] {
                    mark(*a, &mut frontier);
                }
            }
        }
    }
    for r in &roots {
        if !varying[r.index()] {
            mark(*r, &mut frontier);
        }
    }

    // Live set of the staged graph: walk from the roots, stopping at the frontier.
    let mut live = vec![false; n];
    for r in &roots {
        live[r.index()] = true;
    }
    for i in (0..n).rev() {
        if live[i] && !frontier[i] {
            for a in &graph.node(NodeId(i as u32)).args {
                live[a.index()] = true;
            }
        }
    }

    // Evaluate the frontier once. Parameters are not read by any frontier
    // node, so zeros stand in for them.
    let frontier_ids: Vec<NodeId> = (0..n)
        .filter(|&i| frontier[i] && live[i])
        .map(|i| NodeId(i as u32))
        .collect();
    let dummy: Vec<Tensor> = graph
        .params()
        .iter()
        .map(|p| Tensor::full(p.dtype, p.shape.clone(), 0.0))
        .collect();
    let vals = eval_all(graph, &dummy, &frontier_ids)?;
    let before = graph.reachable(&roots);
    let mut report = StageReport {
        folded_nodes: (0..n)
            .filter(|&i| !varying[i] && !live[i] && before[i])
            .count(),
        ..StageReport::default()
    };

    let mut dst = Graph::new();
    for p in graph.params() {
        dst.add_param(p.name.clone(), p.dtype, p.shape.clone());
    }
    let mut data_map: HashMap<u32, NodeId> = HashMap::new();
    let mut map: Vec<Option<NodeId>> = vec![None; n];
    for i in 0..n {
        if !live[i] {
            continue;
        }
        let node = graph.node(NodeId(i as u32));
        let new = if frontier[i] {
            let t = vals[i]
                .as_ref()
                .expect("live frontier nodes are the roots of the eval_all above");
            match t.uniform_value() {
                Some(v) => {
                    report.constants += 1;
                    dst.add(Node {
                        op: Op::Const(v.to_bits()),
                        args: vec![],
                        dtype: t.dtype,
                        shape: t.shape.clone(),
                    })?
                }
                _ => {
                    report.data_tensors += 1;
                    let d = dst.add_data(format!("staged.%{i}"), t.clone());
                    dst.data_node(d)?
                }
            }
        } else if let Op::Data(d) = node.op {
            match data_map.get(&d.0) {
                Some(id) => *id,
                None => {
                    let nd = dst.add_data_info(graph.data()[d.index()].clone());
                    let id = dst.data_node(nd)?;
                    data_map.insert(d.0, id);
                    id
                }
            }
        } else {
            let args = node
                .args
                .iter()
                .map(|a| map[a.index()].expect("a live node's arguments are live and precede it (Graph::add checks), so they are mapped first"))
                .collect();
            dst.add(Node {
                op: node.op.clone(),
                args,
                dtype: node.dtype,
                shape: node.shape.clone(),
            })?
        };
        map[i] = Some(new);
    }
    for (name, o) in graph.outputs() {
        dst.set_output(
            name.clone(),
            map[o.index()].expect("outputs are live, so they are mapped"),
        );
    }
    Ok((dst, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crux_ir::graph::{eval, DType, UnaryOp};

    /// `a * sin(pi x)`: the sine folds into stored data, the product stays.
    #[test]
    fn folds_data_only_subgraph() {
        let mut g = Graph::new();
        let p = g.add_param("a", DType::F64, [1]);
        let xs: Vec<f64> = (0..5).map(|i| i as f64 / 4.0).collect();
        let d = g.add_data("x", Tensor::f64([5, 1], xs.clone()).unwrap());
        let x = g.data_node(d).unwrap();
        let pi = g
            .constant(std::f64::consts::PI, DType::F64, [5, 1])
            .unwrap();
        let px = g.mul(pi, x).unwrap();
        let s = g.unary(UnaryOp::Sin, px).unwrap();
        let a = g.param(p).unwrap();
        let ab = g.broadcast(a, [5, 1]).unwrap();
        let y = g.mul(ab, s).unwrap();
        g.set_output("y", y);
        let (st, rep) = stage(&g).unwrap();
        crux_ir::graph::verify(&st).unwrap();
        assert_eq!(rep.data_tensors, 1);
        assert_eq!(st.cost().transcendentals, 0);
        let args = [Tensor::f64([1], vec![1.5]).unwrap()];
        assert!(eval(&g, &args).unwrap()[0].bit_eq(&eval(&st, &args).unwrap()[0]));
    }

    /// A broadcast constant on the frontier stays a broadcast of its argument.
    #[test]
    fn keeps_broadcast_of_folded_vector() {
        let mut g = Graph::new();
        let p = g.add_param("w", DType::F64, [3, 4]);
        let d = g.add_data("x", Tensor::f64([3, 1], vec![1.0, 2.0, 3.0]).unwrap());
        let x = g.data_node(d).unwrap();
        let e = g.unary(UnaryOp::Exp, x).unwrap();
        let eb = g.broadcast(e, [3, 4]).unwrap();
        let w = g.param(p).unwrap();
        let y = g.mul(w, eb).unwrap();
        g.set_output("y", y);
        let (st, _) = stage(&g).unwrap();
        assert_eq!(st.data()[0].value.shape.0, vec![3, 1]);
        assert!(st.nodes().iter().any(|n| n.op == Op::Broadcast));
    }

    /// A parameter-free comparison read by a parameter-dependent select is
    /// kept (data is float), its operands are staged.
    #[test]
    fn comparisons_stay_and_their_operands_fold() {
        let mut g = Graph::new();
        let p = g.add_param("a", DType::F64, [3]);
        let d = g.add_data("x", Tensor::f64([3], vec![-1.0, 0.5, 2.0]).unwrap());
        let x = g.data_node(d).unwrap();
        let e = g.unary(UnaryOp::Exp, x).unwrap();
        let one = g.constant(1.0, DType::F64, [3]).unwrap();
        let c = g.compare(crux_ir::CmpOp::Gt, e, one).unwrap();
        let a = g.param(p).unwrap();
        let y = g.select(c, a, e).unwrap();
        g.set_output("y", y);
        let (st, _) = stage(&g).unwrap();
        crux_ir::graph::verify(&st).unwrap();
        assert_eq!(st.cost().transcendentals, 0);
        let args = [Tensor::f64([3], vec![7.0, 8.0, 9.0]).unwrap()];
        assert!(eval(&g, &args).unwrap()[0].bit_eq(&eval(&st, &args).unwrap()[0]));
    }

    /// A runtime input of ones is not folded: neither into a constant nor
    /// into the stored product with a data-only factor (as AD makes of
    /// `w · r²`: `w · 2` times the adjoint), and its flag survives.
    #[test]
    fn runtime_data_is_not_folded() {
        let mut g = Graph::new();
        let p = g.add_param("a", DType::F64, [3]);
        let d = g.add_runtime_data("w", Tensor::f64([3], vec![1.0; 3]).unwrap());
        let w = g.data_node(d).unwrap();
        let two = g.constant(2.0, DType::F64, [3]).unwrap();
        let w2 = g.mul(w, two).unwrap();
        let a = g.param(p).unwrap();
        let y = g.mul(w2, a).unwrap();
        g.set_output("y", y);
        let (mut st, rep) = stage(&g).unwrap();
        crux_ir::graph::verify(&st).unwrap();
        assert_eq!((rep.constants, rep.data_tensors), (0, 0));
        assert_eq!(st.data().len(), 1);
        assert!(st.data()[0].runtime);
        let args = [Tensor::f64([3], vec![1.0, 2.0, 3.0]).unwrap()];
        st.set_runtime_data(
            crux_ir::DataId(0),
            Tensor::f64([3], vec![0.0, 5.0, 1.0]).unwrap(),
        )
        .unwrap();
        assert_eq!(eval(&st, &args).unwrap()[0].data, vec![0.0, 20.0, 6.0]);
    }

    /// An output that depends on no parameter becomes a stored tensor or constant.
    #[test]
    fn constant_outputs_fold() {
        let mut g = Graph::new();
        let c = g.constant(2.0, DType::F64, [2]).unwrap();
        let e = g.unary(UnaryOp::Exp, c).unwrap();
        g.set_output("e", e);
        let (st, rep) = stage(&g).unwrap();
        assert_eq!(rep.constants, 1);
        assert_eq!(st.len(), 1);
        assert_eq!(eval(&st, &[]).unwrap()[0].data, vec![2f64.exp(); 2]);
    }
}
