//go:build !unix

package main

// openFileLimit has no portable answer here; 20000 leaves the default cap
// at 10000 connections.
func openFileLimit() int { return 20000 }
