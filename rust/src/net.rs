//! Simulated network model (issue: the simulated world). Work in progress.
