//! A small directed multigraph with typed edges: strongly connected components (Tarjan,
//! iterative) and shortest paths (0-1 BFS, where only edges into "counted" nodes cost one).

use std::collections::VecDeque;

/// Edge kinds as bits, so that a search can be restricted to a set of kinds.
pub(crate) type Mask = u8;

#[derive(Clone, Debug)]
pub(crate) struct Edge<W> {
    pub from: u32,
    pub to: u32,
    pub kind: Mask,
    pub why: W,
}

pub(crate) struct Graph<W> {
    /// Nodes `0..counted` cost one to enter; the others (helpers) cost nothing.
    pub counted: usize,
    pub edges: Vec<Edge<W>>,
    pub adj: Vec<Vec<u32>>,
}

/// Reusable state of a shortest-path search.
pub(crate) struct Bfs {
    dist: Vec<u32>,
    parent: Vec<u32>,
    touched: Vec<u32>,
}

impl Bfs {
    pub fn new(nodes: usize) -> Self {
        Bfs {
            dist: vec![u32::MAX; nodes],
            parent: vec![u32::MAX; nodes],
            touched: Vec::new(),
        }
    }
}

impl<W> Graph<W> {
    pub fn new(nodes: usize, counted: usize) -> Self {
        Graph {
            counted,
            edges: Vec::new(),
            adj: vec![Vec::new(); nodes],
        }
    }

    pub fn nodes(&self) -> usize {
        self.adj.len()
    }

    pub fn add(&mut self, from: usize, to: usize, kind: Mask, why: W) {
        let id = self.edges.len() as u32;
        self.edges.push(Edge {
            from: from as u32,
            to: to as u32,
            kind,
            why,
        });
        self.adj[from].push(id);
    }

    /// Strongly connected components using only edges of `mask`: a component id per node
    /// (`u32::MAX` for nodes in no cycle) and the components with more than one node.
    pub fn sccs(&self, mask: Mask) -> (Vec<u32>, Vec<Vec<u32>>) {
        let n = self.nodes();
        const NONE: u32 = u32::MAX;
        let mut index = vec![NONE; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        let mut comp = vec![NONE; n];
        let mut comps: Vec<Vec<u32>> = Vec::new();
        let mut counter = 0u32;
        // Explicit DFS stack: (node, next adjacency position).
        let mut dfs: Vec<(u32, usize)> = Vec::new();
        for root in 0..n {
            if index[root] != NONE {
                continue;
            }
            dfs.push((root as u32, 0));
            index[root] = counter;
            low[root] = counter;
            counter += 1;
            stack.push(root as u32);
            on_stack[root] = true;
            while let Some(&mut (v, ref mut pos)) = dfs.last_mut() {
                let vu = v as usize;
                let mut descended = false;
                while *pos < self.adj[vu].len() {
                    let e = &self.edges[self.adj[vu][*pos] as usize];
                    *pos += 1;
                    if e.kind & mask == 0 {
                        continue;
                    }
                    let w = e.to as usize;
                    if index[w] == NONE {
                        index[w] = counter;
                        low[w] = counter;
                        counter += 1;
                        stack.push(w as u32);
                        on_stack[w] = true;
                        dfs.push((w as u32, 0));
                        descended = true;
                        break;
                    } else if on_stack[w] {
                        low[vu] = low[vu].min(index[w]);
                    }
                }
                if descended {
                    continue;
                }
                dfs.pop();
                if let Some(&(parent, _)) = dfs.last() {
                    let p = parent as usize;
                    low[p] = low[p].min(low[vu]);
                }
                if low[vu] == index[vu] {
                    let mut members = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w as usize] = false;
                        members.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if members.len() > 1 {
                        let id = comps.len() as u32;
                        for &m in &members {
                            comp[m as usize] = id;
                        }
                        comps.push(members);
                    }
                }
            }
        }
        (comp, comps)
    }

    /// Shortest path (fewest counted nodes entered) from `from` to `to` with edges of `mask`
    /// inside component `c` of `comp`. With `from == to`, a shortest cycle through `from`.
    /// `work` is decremented per edge looked at; `None` when no path or out of work.
    #[allow(clippy::too_many_arguments)]
    pub fn shortest_path(
        &self,
        bfs: &mut Bfs,
        from: usize,
        to: usize,
        mask: Mask,
        comp: &[u32],
        c: u32,
        work: &mut u64,
    ) -> Option<Vec<u32>> {
        for &t in &bfs.touched {
            bfs.dist[t as usize] = u32::MAX;
            bfs.parent[t as usize] = u32::MAX;
        }
        bfs.touched.clear();
        // Distances are to the target side of each edge; the source gets distance 0 only
        // when it is not also the target (a cycle must use at least one edge).
        let mut dq: VecDeque<(u32, u32)> = VecDeque::new();
        dq.push_back((from as u32, 0));
        let mut found = false;
        let mut first = true;
        while let Some((v, d)) = dq.pop_front() {
            if !first && v as usize == to {
                found = true;
                break;
            }
            if !first && bfs.dist[v as usize] < d {
                continue;
            }
            first = false;
            for &eid in &self.adj[v as usize] {
                if *work == 0 {
                    return None;
                }
                *work -= 1;
                let e = &self.edges[eid as usize];
                if e.kind & mask == 0 || comp[e.to as usize] != c {
                    continue;
                }
                let w = e.to as usize;
                let cost = u32::from(w < self.counted);
                let nd = d + cost;
                if nd < bfs.dist[w] {
                    if bfs.dist[w] == u32::MAX {
                        bfs.touched.push(w as u32);
                    }
                    bfs.dist[w] = nd;
                    bfs.parent[w] = eid;
                    if cost == 0 {
                        dq.push_front((w as u32, nd));
                    } else {
                        dq.push_back((w as u32, nd));
                    }
                }
            }
        }
        if !found {
            return None;
        }
        let mut path = Vec::new();
        let mut v = to;
        loop {
            let eid = bfs.parent[v];
            if eid == u32::MAX {
                return None;
            }
            path.push(eid);
            v = self.edges[eid as usize].from as usize;
            if v == from {
                break;
            }
            if path.len() > self.nodes() {
                return None;
            }
        }
        path.reverse();
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scc_and_cycle() {
        // 0 -> 1 -> 2 -> 0, 2 -> 3, 3 -> 4 (helper) -> 3
        let mut g: Graph<()> = Graph::new(5, 4);
        g.add(0, 1, 1, ());
        g.add(1, 2, 1, ());
        g.add(2, 0, 2, ());
        g.add(2, 3, 1, ());
        g.add(3, 4, 1, ());
        g.add(4, 3, 1, ());
        let (comp, comps) = g.sccs(1 | 2);
        assert_eq!(comps.len(), 2);
        assert_eq!(comp[0], comp[1]);
        assert_eq!(comp[0], comp[2]);
        assert_ne!(comp[0], comp[3]);
        let (_, only1) = g.sccs(1);
        assert_eq!(only1.len(), 1);
        let mut work = 1000;
        let mut bfs = Bfs::new(g.nodes());
        let cyc = g
            .shortest_path(&mut bfs, 0, 0, 1 | 2, &comp, comp[0], &mut work)
            .unwrap_or_default();
        assert_eq!(cyc.len(), 3);
        let p = g
            .shortest_path(&mut bfs, 1, 0, 1 | 2, &comp, comp[0], &mut work)
            .unwrap_or_default();
        assert_eq!(p.len(), 2);
    }
}
