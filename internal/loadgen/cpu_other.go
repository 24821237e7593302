//go:build !unix

package loadgen

import "time"

// ProcessCPU returns 0: there is no getrusage here, and Result.CPU stays 0.
func ProcessCPU() time.Duration { return 0 }
