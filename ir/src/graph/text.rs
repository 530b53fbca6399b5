//! Text format of the graph IR (printing and parsing). Being written.
